"""Schedules as Keras objects: shapes, statelessness, tf.function and XLA, serialization, Adam, validation."""

import inspect
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import schedules

EXAMPLES = {
    "constant": dict(initial_lr=0.01),
    "piecewise_constant": dict(boundaries=[10, 50], values=[0.1, 0.01, 0.001]),
    "exponential": dict(initial_lr=0.1, decay_steps=20, decay_rate=0.5, staircase=True, min_lr=1e-3),
    "inverse_time": dict(initial_lr=0.1, decay_steps=20, decay_rate=0.5),
    "polynomial": dict(initial_lr=0.1, min_lr=1e-3, decay_steps=30, power=2.0, cycle=True),
    "cosine": dict(initial_lr=0.1, min_lr=1e-3, warmup_steps=10, total_steps=80),
    "cosine_restarts": dict(initial_lr=0.1, min_lr=1e-3, warmup_steps=3, cycle_steps=20, cycle_multiplier=1.5,
                            peak_decay=0.8, max_cycles=4),
    "one_cycle": dict(initial_lr=0.1, min_lr=1e-3, total_steps=90, warmup_fraction=0.25),
    "warmup_stable_decay": dict(initial_lr=0.1, min_lr=1e-3, warmup_steps=10, stable_steps=40, decay_steps=30,
                                decay_shape="sqrt"),
    "piecewise_interpolate": dict(boundaries=[10, 40, 90], values=[0.0, 0.1, 0.02, 1e-3], anneal_shape="cosine"),
    "power_decay": dict(initial_lr=0.1, decay_power=0.5, warmup_steps=10, total_steps=100, linear_decay_fraction=0.2,
                        warmup_power=2.0),
    "cyclic": dict(initial_lr=0.1, min_lr=1e-3, up_steps=7, down_steps=11, mode="triangular2",
                   cycle_multiplier=1.5),
    "polynomial_restarts": dict(initial_lr=0.1, min_lr=1e-3, warmup_steps=3, cycle_steps=20, cycle_multiplier=1.5,
                                peak_decay=0.8, max_cycles=4, k_decay=2.0, warmup_power=0.5, power=0.5),
}
STEPS = np.arange(0, 120, dtype=np.int64)
# Parameters added to existing schedules (issue 18), each set away from its default.
LATER_EXAMPLES = {
    "exponential(growth)": dict(initial_lr=1e-4, decay_steps=10, decay_rate=3.0, max_lr=0.5),
    "cosine(exponent, k_decay, warmup_power)": dict(initial_lr=0.1, min_lr=1e-3, warmup_steps=10, total_steps=80,
                                                    exponent=2.0, k_decay=0.5, warmup_power=2.0),
    "cosine_restarts(k_decay, warmup_power)": dict(initial_lr=0.1, min_lr=1e-3, warmup_steps=3, cycle_steps=20,
                                                   cycle_multiplier=1.5, k_decay=3.0, warmup_power=0.5),
    "one_cycle(start_lr, linear)": dict(initial_lr=0.1, min_lr=1e-4, total_steps=90, warmup_fraction=0.25,
                                        start_lr=4e-3, anneal_shape="linear"),
    "one_cycle(three_phase)": dict(initial_lr=0.1, min_lr=1e-4, total_steps=90, warmup_fraction=0.3,
                                   start_lr=4e-3, three_phase=True),
    "one_cycle(return_fraction)": dict(initial_lr=0.1, min_lr=1e-4, total_steps=90, warmup_fraction=0.3,
                                       three_phase=True, return_fraction=0.85, anneal_shape="linear"),
    "warmup_stable_decay(warmup_power)": dict(initial_lr=0.1, min_lr=1e-3, warmup_steps=10, stable_steps=40,
                                              decay_steps=30, warmup_power=3.0),
    "warmup_stable_decay(power)": dict(initial_lr=0.1, min_lr=1e-3, warmup_steps=10, stable_steps=40,
                                       decay_steps=30, decay_shape="power", decay_power=2.0),
    "warmup_stable_decay(exp)": dict(initial_lr=0.1, min_lr=1e-3, warmup_steps=10, stable_steps=40,
                                     decay_steps=30, decay_shape="exp", decay_ratio=0.05),
    "cyclic(exp_range)": dict(initial_lr=0.1, min_lr=1e-3, up_steps=10, mode="exp_range", gamma=0.99),
    "cosine(warmup_prefix=False)": dict(initial_lr=0.1, min_lr=1e-3, warmup_steps=10, total_steps=80,
                                        warmup_prefix=False),
    "cosine_restarts(warmup_prefix=False)": dict(initial_lr=0.1, min_lr=1e-3, warmup_steps=3, cycle_steps=20,
                                                 cycle_multiplier=1.5, warmup_prefix=False),
    "polynomial_restarts(warmup_prefix=False)": dict(initial_lr=0.1, min_lr=1e-3, warmup_steps=4, cycle_steps=20,
                                                     power=2.0, warmup_prefix=False),
}


def all_schedules():
    built = {name: schedules.get(name, **params) for name, params in EXAMPLES.items()}
    built["warmup(cosine_restarts)"] = schedules.warmup(built["cosine_restarts"], warmup_steps=7, start_lr=0.0)
    built["warmup(prefix=False, warmup_power)"] = schedules.warmup(built["polynomial_restarts"], warmup_steps=9,
                                                                   start_lr=1e-3, prefix=False, warmup_power=2.0)
    for name, params in LATER_EXAMPLES.items():
        built[name] = schedules.get(name.split("(")[0], **params)
    built["sequence"] = schedules.sequence([(built["constant"], 15), (built["cosine"], 40),
                                            (built["exponential"], None)])
    return built


SCHEDULES = all_schedules()


def test_names_cover_the_table():
    assert schedules.names() == list(EXAMPLES)


@pytest.mark.parametrize("name", SCHEDULES)
def test_step_types_and_shapes(name):
    lr = SCHEDULES[name]
    reference = lr(STEPS).numpy()
    for dtype in (tf.int32, tf.int64):
        scalar = lr(tf.constant(37, dtype))
        assert scalar.dtype == tf.float32 and scalar.shape == ()
        assert float(scalar) == reference[37]
        vector = lr(tf.constant(STEPS, dtype))
        assert vector.dtype == tf.float32 and vector.shape == (120,)
        np.testing.assert_array_equal(vector.numpy(), reference)
    assert float(lr(37)) == reference[37]
    assert np.all(np.isfinite(reference)) and np.all(reference >= 0)


@pytest.mark.parametrize("name", SCHEDULES)
def test_stateless_any_call_order(name):
    lr = SCHEDULES[name]
    forward = [float(lr(int(s))) for s in STEPS]
    backward = [float(lr(int(s))) for s in STEPS[::-1]][::-1]
    assert forward == backward == list(lr(STEPS).numpy())
    assert not any(isinstance(v, tf.Variable) for v in vars(lr).values())


@pytest.mark.parametrize("name", SCHEDULES)
def test_tf_function_does_not_retrace_and_xla_agrees(name):
    lr = SCHEDULES[name]
    step = tf.Variable(0, dtype=tf.int64)
    traces = []

    @tf.function(jit_compile=True)
    def rate():
        traces.append(1)
        return lr(step)

    xla = []
    for s in STEPS:
        step.assign(int(s))
        xla.append(float(rate()))
    assert len(traces) == 1
    np.testing.assert_allclose(xla, lr(STEPS).numpy(), rtol=1e-6)
    batch = tf.function(lambda s: lr(s), jit_compile=True)(tf.constant(STEPS))
    np.testing.assert_allclose(batch.numpy(), lr(STEPS).numpy(), rtol=1e-6)


@pytest.mark.parametrize("name", SCHEDULES)
def test_config_round_trips(name):
    lr = SCHEDULES[name]
    again = type(lr).from_config(lr.get_config())
    np.testing.assert_array_equal(again(STEPS).numpy(), lr(STEPS).numpy())
    serialized = keras.optimizers.schedules.serialize(lr)
    restored = keras.optimizers.schedules.deserialize(serialized)
    assert type(restored) is type(lr)
    np.testing.assert_array_equal(restored(STEPS).numpy(), lr(STEPS).numpy())
    assert keras.optimizers.schedules.serialize(restored) == serialized


@pytest.mark.parametrize("name", ["cosine_restarts", "sequence"])
def test_adam_trains_and_saves_with_the_schedule(name, tmp_path):
    lr = SCHEDULES[name]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="mse")
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5], [3.0]], dtype="float32")
    history = model.fit(x, y, batch_size=8, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert float(model.optimizer.learning_rate) == pytest.approx(float(lr(int(model.optimizer.iterations))))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    restored = loaded.optimizer._learning_rate
    assert type(restored) is type(lr)
    assert int(loaded.optimizer.iterations) == 24
    np.testing.assert_array_equal(restored(STEPS).numpy(), lr(STEPS).numpy())


BAD = [
    ("constant", dict(initial_lr=0.0), "initial_lr", "> 0"),
    ("constant", dict(initial_lr=float("nan")), "initial_lr", "finite"),
    ("constant", dict(initial_lr=float("inf")), "initial_lr", "finite"),
    ("constant", dict(initial_lr="0.1"), "initial_lr", "finite number"),
    ("piecewise_constant", dict(boundaries=[5, 5], values=[1.0, 0.5, 0.1]), "boundaries", "strictly increasing"),
    ("piecewise_constant", dict(boundaries=[5, 10], values=[1.0, 0.5]), "values", "len(boundaries) + 1"),
    ("piecewise_constant", dict(boundaries=[-1], values=[1.0, 0.5]), "boundaries[0]", ">= 0"),
    ("piecewise_constant", dict(boundaries=[1], values=[1.0, -0.5]), "values[1]", ">= 0"),
    ("exponential", dict(initial_lr=0.1, decay_steps=0, decay_rate=0.5), "decay_steps", ">= 1"),
    ("exponential", dict(initial_lr=0.1, decay_steps=10, decay_rate=1.5), "decay_rate", "(0, 1]"),
    ("exponential", dict(initial_lr=0.1, decay_steps=10, decay_rate=0.5, min_lr=0.2), "min_lr", "at most"),
    ("exponential", dict(initial_lr=0.1, decay_steps=10, decay_rate=2.0, max_lr=0.05), "max_lr", ">= 0.1"),
    ("exponential", dict(initial_lr=0.1, decay_steps=10, decay_rate=2.0), "decay_rate", "max_lr set"),
    ("exponential", dict(initial_lr=0.1, decay_steps=10, decay_rate=-2.0, max_lr=1.0), "decay_rate", "> 0"),
    ("inverse_time", dict(initial_lr=0.1, decay_steps=-3, decay_rate=0.5), "decay_steps", ">= 1"),
    ("inverse_time", dict(initial_lr=0.1, decay_steps=3, decay_rate=-0.5), "decay_rate", ">= 0"),
    ("polynomial", dict(initial_lr=0.1, min_lr=-0.1, decay_steps=10), "min_lr", ">= 0"),
    ("polynomial", dict(initial_lr=0.1, min_lr=0.0, decay_steps=10.5), "decay_steps", "whole number"),
    ("polynomial", dict(initial_lr=0.1, min_lr=0.0, decay_steps=10, power=0.0), "power", "> 0"),
    ("cosine", dict(initial_lr=0.1, min_lr=0.0, warmup_steps=100, total_steps=100), "warmup_steps", "[0, 99]"),
    ("cosine", dict(initial_lr=0.1, min_lr=0.0, warmup_steps=-1, total_steps=100), "warmup_steps", "[0, 99]"),
    ("cosine", dict(initial_lr=0.1, min_lr=0.0, warmup_steps=0, total_steps=0), "total_steps", ">= 1"),
    ("cosine", dict(initial_lr=0.1, min_lr=0.5, warmup_steps=0, total_steps=10), "min_lr", "at most"),
    ("cosine_restarts", dict(initial_lr=0.1, min_lr=0.0, warmup_steps=10, cycle_steps=10), "warmup_steps",
     "[0, 9]"),
    ("cosine_restarts", dict(initial_lr=0.1, min_lr=0.0, warmup_steps=0, cycle_steps=0), "cycle_steps", ">= 1"),
    ("cosine_restarts", dict(initial_lr=0.1, min_lr=0.0, warmup_steps=0, cycle_steps=10, cycle_multiplier=0.5),
     "cycle_multiplier", ">= 1"),
    ("cosine_restarts", dict(initial_lr=0.1, min_lr=0.0, warmup_steps=0, cycle_steps=10,
                             cycle_multiplier=float("nan")), "cycle_multiplier", "finite"),
    ("cosine_restarts", dict(initial_lr=0.1, min_lr=0.0, warmup_steps=0, cycle_steps=10, peak_decay=0.0),
     "peak_decay", "(0, 1]"),
    ("cosine_restarts", dict(initial_lr=0.1, min_lr=0.0, warmup_steps=0, cycle_steps=10, max_cycles=0),
     "max_cycles", ">= 1"),
    ("cosine_restarts", dict(initial_lr=0.1, min_lr=0.0, warmup_steps=0, cycle_steps=1,
                             cycle_multiplier=1.00001), "cycle_multiplier", "cycles"),
    ("one_cycle", dict(initial_lr=0.1, min_lr=0.0, total_steps=10, warmup_fraction=1.0), "warmup_fraction",
     "[0, 1)"),
    ("warmup_stable_decay", dict(initial_lr=0.1, min_lr=0.0, warmup_steps=1, stable_steps=1, decay_steps=1,
                                 decay_shape="step"), "decay_shape", "'linear', 'cosine', 'sqrt'"),
    ("warmup_stable_decay", dict(initial_lr=0.1, min_lr=0.0, warmup_steps=1, stable_steps=-1, decay_steps=1),
     "stable_steps", ">= 0"),
    ("cosine", dict(initial_lr=0.1, min_lr=0.0, warmup_steps=0), "total_steps", "set for schedule cosine"),
    # issue 18
    ("cosine", dict(initial_lr=0.1, min_lr=0.0, warmup_steps=0, total_steps=5, exponent=0.0), "exponent", "> 0"),
    ("cosine", dict(initial_lr=0.1, min_lr=0.0, warmup_steps=0, total_steps=5, k_decay=-1.0), "k_decay", "> 0"),
    ("cosine", dict(initial_lr=0.1, min_lr=0.0, warmup_steps=1, total_steps=5, warmup_power=0.0), "warmup_power",
     "> 0"),
    ("cosine_restarts", dict(initial_lr=0.1, min_lr=0.0, warmup_steps=0, cycle_steps=10, k_decay=0.0), "k_decay",
     "> 0"),
    ("one_cycle", dict(initial_lr=0.1, min_lr=0.0, total_steps=10, start_lr=0.2), "start_lr", "[0, 0.1]"),
    ("one_cycle", dict(initial_lr=0.1, min_lr=0.0, total_steps=10, warmup_fraction=0.5, three_phase=True),
     "warmup_fraction", "(0, 0.5) with three_phase"),
    ("one_cycle", dict(initial_lr=0.1, min_lr=0.0, total_steps=10, return_fraction=0.8), "return_fraction",
     "None unless three_phase"),
    ("one_cycle", dict(initial_lr=0.1, min_lr=0.0, total_steps=10, warmup_fraction=0.3, three_phase=True,
                       return_fraction=0.3), "return_fraction", "(0.3, 1)"),
    ("one_cycle", dict(initial_lr=0.1, min_lr=0.0, total_steps=10, anneal_shape="exp"), "anneal_shape",
     "'cosine', 'linear'"),
    ("warmup_stable_decay", dict(initial_lr=0.1, min_lr=0.0, warmup_steps=1, stable_steps=1, decay_steps=1,
                                 decay_shape="power", decay_power=0.0), "decay_power", "> 0"),
    ("warmup_stable_decay", dict(initial_lr=0.1, min_lr=0.0, warmup_steps=1, stable_steps=1, decay_steps=1,
                                 decay_power=-1.0), "decay_power", ">= 0"),
    ("cosine_restarts", dict(initial_lr=0.1, min_lr=0.0, warmup_steps=1, cycle_steps=10, warmup_power=0.0),
     "warmup_power", "> 0"),
    ("warmup_stable_decay", dict(initial_lr=0.1, min_lr=0.0, warmup_steps=1, stable_steps=1, decay_steps=1,
                                 warmup_power=-2.0), "warmup_power", "> 0"),
    ("power_decay", dict(initial_lr=0.1, warmup_steps=10, warmup_power=float("inf")), "warmup_power", "finite"),
    ("power_decay", dict(initial_lr=0.1, warmup_steps=10, warmup_power=0.0), "warmup_power", "> 0"),
    ("one_cycle", dict(initial_lr=0.1, min_lr=0.0, total_steps=10, warmup_fraction=0.2, three_phase="False"),
     "three_phase", "True or False"),
    ("cosine", dict(initial_lr=0.1, min_lr=0.0, warmup_steps=1, total_steps=5, warmup_prefix="False"),
     "warmup_prefix", "True or False"),
    ("cosine_restarts", dict(initial_lr=0.1, min_lr=0.0, warmup_steps=1, cycle_steps=10, warmup_prefix=0.0),
     "warmup_prefix", "True or False"),
    ("polynomial_restarts", dict(initial_lr=0.1, min_lr=0.0, warmup_steps=1, cycle_steps=10, warmup_prefix=None),
     "warmup_prefix", "True or False"),
    ("warmup_stable_decay", dict(initial_lr=0.1, min_lr=0.0, warmup_steps=1, stable_steps=1, decay_steps=1,
                                 decay_ratio=1.0), "decay_ratio", "(0, 1)"),
    ("piecewise_interpolate", dict(boundaries=[0, 10], values=[1.0, 0.5, 0.1]), "boundaries[0]", ">= 1"),
    ("piecewise_interpolate", dict(boundaries=[10, 10], values=[1.0, 0.5, 0.1]), "boundaries", "strictly"),
    ("piecewise_interpolate", dict(boundaries=[10], values=[1.0]), "values", "len(boundaries) + 1"),
    ("piecewise_interpolate", dict(boundaries=[10], values=[1.0, -1.0]), "values[1]", ">= 0"),
    ("piecewise_interpolate", dict(boundaries=[10], values=[1.0, 0.0], anneal_shape="sqrt"), "anneal_shape",
     "one of"),
    ("power_decay", dict(initial_lr=0.1, decay_power=-0.5), "decay_power", ">= 0"),
    ("power_decay", dict(initial_lr=0.0), "initial_lr", "> 0"),
    ("power_decay", dict(initial_lr=0.1, warmup_steps=10, total_steps=10), "warmup_steps", "[0, 9]"),
    ("power_decay", dict(initial_lr=0.1, total_steps=0), "total_steps", ">= 1"),
    ("power_decay", dict(initial_lr=0.1, total_steps=10, linear_decay_fraction=1.5), "linear_decay_fraction",
     "[0, 1]"),
    ("cyclic", dict(initial_lr=0.1, min_lr=0.0, up_steps=0), "up_steps", ">= 1"),
    ("cyclic", dict(initial_lr=0.1, min_lr=0.0, up_steps=5, down_steps=0), "down_steps", ">= 1"),
    ("cyclic", dict(initial_lr=0.1, min_lr=0.0, up_steps=5, mode="triangular3"), "mode", "'triangular2'"),
    ("cyclic", dict(initial_lr=0.1, min_lr=0.0, up_steps=5, gamma=1.5), "gamma", "(0, 1]"),
    ("cyclic", dict(initial_lr=0.1, min_lr=0.2, up_steps=5), "min_lr", "at most"),
    ("cyclic", dict(initial_lr=0.1, min_lr=0.0, up_steps=5, cycle_multiplier=0.9), "cycle_multiplier", ">= 1"),
    ("cyclic", dict(initial_lr=0.1, min_lr=0.0, up_steps=1, cycle_multiplier=1.00001), "cycle_multiplier",
     "cycles of up_steps + down_steps = 2"),
    ("polynomial_restarts", dict(initial_lr=0.1, min_lr=0.0, warmup_steps=0, cycle_steps=10, power=0.0), "power",
     "> 0"),
    ("polynomial_restarts", dict(initial_lr=0.1, min_lr=0.0, warmup_steps=10, cycle_steps=10), "warmup_steps",
     "[0, 9]"),
    ("cosine", dict(initial_lr=0.1, min_lr=0.0, warmup_steps=0, total_steps=5, cycle_steps=3), "cycle_steps",
     "parameters of cosine"),
]


@pytest.mark.parametrize("name,params,parameter,allowed", BAD)
def test_bad_parameters_raise_value_error_naming_them(name, params, parameter, allowed):
    with pytest.raises(ValueError) as error:
        schedules.get(name, **params)
    message = str(error.value)
    assert message.startswith(parameter + " ") and allowed in message and "\n" not in message
    assert error.value.parameter == parameter


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError) as error:
        schedules.get("cosine_restart", initial_lr=0.1)
    for name in schedules.names():
        assert name in str(error.value)
    assert str(error.value).startswith("schedule ")


def test_combinators_validate():
    with pytest.raises(ValueError, match="warmup_steps"):
        schedules.warmup(SCHEDULES["constant"], warmup_steps=-1)
    with pytest.raises(ValueError, match="schedule"):
        schedules.warmup(0.1, warmup_steps=5)
    with pytest.raises(ValueError, match="phases"):
        schedules.sequence([])
    with pytest.raises(ValueError, match="warmup_power"):
        schedules.warmup(SCHEDULES["constant"], warmup_steps=5, warmup_power=-1.0)
    with pytest.raises(ValueError, match=r"phases\[0\] steps"):
        schedules.sequence([(SCHEDULES["constant"], None), (SCHEDULES["cosine"], 5)])
    with pytest.raises(schedules.ParameterError) as error:
        schedules.warmup(SCHEDULES["constant"], warmup_steps=5, prefix="False")  # a string is not False
    assert str(error.value) == "prefix must be True or False, got 'False'" and error.value.parameter == "prefix"


def test_warmup_stable_decay_checks_decay_power_only_for_the_power_shape():
    # --decay_power=0 is power_decay's constant rate; the same flag must not stop a cosine or exp WSD.
    for shape in ("linear", "cosine", "sqrt", "exp"):
        lr = schedules.get("warmup_stable_decay", initial_lr=1.0, min_lr=0.0, warmup_steps=0, stable_steps=0,
                           decay_steps=10, decay_shape=shape, decay_power=0.0)
        default = schedules.get("warmup_stable_decay", initial_lr=1.0, min_lr=0.0, warmup_steps=0, stable_steps=0,
                                decay_steps=10, decay_shape=shape)
        np.testing.assert_array_equal(lr(STEPS).numpy(), default(STEPS).numpy())
    with pytest.raises(schedules.ParameterError, match="decay_power must be a finite number > 0, got 0.0"):
        schedules.get("warmup_stable_decay", initial_lr=1.0, min_lr=0.0, warmup_steps=0, stable_steps=0,
                      decay_steps=10, decay_shape="power", decay_power=0.0)


# The parameter lists of the schedules that existed before issue 18, as they were at cf8677d
# (`git show cf8677d:schedules/<file>.py`): a schedule built with only these parameters must keep exactly this
# config, so configs written before issue 18 stay the same.
PRE_ISSUE_18 = {
    "cosine": (dict(initial_lr=0.1, min_lr=1e-3, warmup_steps=10, total_steps=80), {}),
    "one_cycle": (dict(initial_lr=0.1, min_lr=1e-3, total_steps=90), dict(warmup_fraction=0.3)),
    "warmup_stable_decay": (dict(initial_lr=0.1, min_lr=1e-3, warmup_steps=10, stable_steps=40, decay_steps=30),
                            dict(decay_shape="cosine")),
    "exponential": (dict(initial_lr=0.1, decay_steps=20, decay_rate=0.5), dict(staircase=False, min_lr=0.0)),
    "polynomial": (dict(initial_lr=0.1, min_lr=1e-3, decay_steps=30), dict(power=1.0, cycle=False)),
    "cosine_restarts": (dict(initial_lr=0.1, min_lr=1e-3, warmup_steps=3, cycle_steps=20),
                        dict(cycle_multiplier=1.0, peak_decay=1.0, max_cycles=None)),
}


@pytest.mark.parametrize("name", PRE_ISSUE_18)
def test_pre_issue_18_configs_are_unchanged(name):
    required, defaults = PRE_ISSUE_18[name]
    lr = schedules.get(name, **required)
    config = lr.get_config()
    assert list(config) == [*required, *defaults]  # the pre-issue signature order
    assert config == {**required, **defaults}
    assert all(type(config[k]) is type(v) for k, v in {**required, **defaults}.items())
    assert type(lr).from_config(config).get_config() == config


@pytest.mark.parametrize("cls", sorted({type(s) for s in SCHEDULES.values()}, key=lambda c: c.__name__))
def test_later_defaults_are_the_signature_defaults(cls):
    signature = inspect.signature(cls.__init__).parameters
    for parameter, default in cls._LATER.items():
        assert parameter in signature, parameter
        assert signature[parameter].default == default and type(signature[parameter].default) is type(default)


def test_integer_steps_only():
    with pytest.raises(TypeError, match="integer steps"):
        SCHEDULES["cosine"](tf.constant(1.5))


def test_restart_table_stays_small_and_exact_for_close_multipliers():
    lr = schedules.get("cosine_restarts", initial_lr=1.0, min_lr=0.0, warmup_steps=0, cycle_steps=100,
                       cycle_multiplier=1.01)
    # 100 * (1.01**k - 1) / 0.01 is whole for k <= 2 only: 100, 201.
    assert float(lr(201)) == pytest.approx(1.0)
    assert float(lr(200)) == pytest.approx(0.5 * (1 + math.cos(math.pi * 100 / 101)), abs=1e-6)
