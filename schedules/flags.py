"""Command-line flags for schedule parameters, shared by the plot CLI and the trainer.

Every parameter of every schedule is one flag of the same name (--initial_lr, --cycle_steps, ...), unset by
default. `build` turns the flags that were set into a schedule, filling unset lengths from the run's length.
"""

import inspect

from absl import flags

from schedules import base, cosine, registry, restarts, validation

_FLOATS = {
    "initial_lr": "Peak learning rate (default 1e-3).",
    "min_lr": "Floor of the learning rate (default 0).",
    "cycle_multiplier": "cosine_restarts, polynomial_restarts, cyclic: each cycle is this many times longer "
                        "than the one before (>= 1).",
    "peak_decay": "cosine_restarts, polynomial_restarts: each cycle's peak is this fraction of the one before "
                  "(in (0, 1]).",
    "decay_rate": "exponential: factor per decay_steps (default 0.1 over the run; above 1 grows, with "
                  "--max_lr); inverse_time: slope (default 9, a tenth of initial_lr at the end of the run).",
    "max_lr": "exponential: ceiling of the rate (needed with decay_rate > 1, e.g. an LR range test).",
    "power": "polynomial, polynomial_restarts: exponent of the decay (default 1).",
    "warmup_fraction": "one_cycle: fraction of total_steps spent rising (default 0.3).",
    "start_lr": "one_cycle: rate at step 0 (default min_lr; torch's max_lr / div_factor).",
    "return_fraction": "one_cycle with --three_phase: fraction of total_steps where the fall back to start_lr "
                       "ends (default twice warmup_fraction).",
    "exponent": "cosine: power of the cosine factor (optax's exponent, default 1).",
    "k_decay": "cosine, cosine_restarts, polynomial_restarts: timm's k-decay, x ** k in place of the fraction "
               "x of the decay done (default 1).",
    "warmup_power": "cosine, cosine_restarts, polynomial_restarts, warmup_stable_decay, power_decay: the "
                    "warmup is (s / warmup_steps) ** warmup_power of the way up (default 1, linear).",
    "decay_power": "warmup_stable_decay --decay_shape=power: the decay is 1 - x ** decay_power (default 0.5); "
                   "power_decay: the rate falls as step ** -decay_power (default 0.5, rsqrt).",
    "decay_ratio": "warmup_stable_decay --decay_shape=exp: the decay is (r ** x - r) / (1 - r), r = decay_ratio "
                   "(in (0, 1), default 0.1).",
    "gamma": "cyclic --mode=exp_range: the height is multiplied by gamma ** step (in (0, 1]).",
    "linear_decay_fraction": "power_decay with --total_steps: the last fraction of total_steps falls linearly "
                             "to 0 (default 0.1).",
}
_STEPS = {
    "warmup_steps": "Steps of warmup (cosine, warmup_stable_decay, power_decay: 5% of the run; "
                    "cosine_restarts, polynomial_restarts: 10% of a cycle).",
    "cycle_steps": "cosine_restarts, polynomial_restarts: length of the first cycle (default a quarter of the "
                   "run).",
    "decay_steps": "polynomial, exponential, inverse_time: decay period (default the run); "
                   "warmup_stable_decay: decay length (default 20% of the run).",
    "total_steps": "cosine, one_cycle: steps until min_lr (default the run); power_decay: steps until 0 "
                   "(default none: no linear fall).",
    "up_steps": "cyclic: steps rising in the first cycle (torch's step_size_up; default an eighth of the run).",
    "down_steps": "cyclic: steps falling in the first cycle (default up_steps).",
    "stable_steps": "warmup_stable_decay: steps at initial_lr (default what warmup and decay leave).",
    "max_cycles": "cosine_restarts, polynomial_restarts: cycles before staying at min_lr (default unlimited).",
}
_BOOLS = {
    "staircase": "exponential, inverse_time: decay in whole periods.",
    "cycle": "polynomial: start a new, longer period at every multiple of decay_steps.",
    "three_phase": "one_cycle: rise, fall back to start_lr, then fall to min_lr (torch's three_phase).",
    "warmup_prefix": "cosine, cosine_restarts, polynomial_restarts: the decay starts after the warmup (default "
                     "true); --nowarmup_prefix lays the warmup over the decay's start (timm's warmup_prefix=False).",
}
_ENUMS = {
    "decay_shape": (cosine.DECAY_SHAPES, "warmup_stable_decay: shape of the decay (default cosine)."),
    "anneal_shape": (base.ANNEAL_SHAPES, "one_cycle: shape of each phase (default cosine); "
                                         "piecewise_interpolate: shape between boundaries (default linear)."),
    "mode": (restarts.CYCLIC_MODES, "cyclic: torch's CyclicLR mode (default triangular)."),
}


def define(flag_values=flags.FLAGS):
    """Defines one flag per schedule parameter on `flag_values`, each unset (None) by default."""
    for name, help_text in _FLOATS.items():
        if name == "initial_lr":  # a number, or "auto", which the trainer resolves (trainer.range_test)
            flags.DEFINE_string(name, None, help_text + " The trainer also takes auto: a learning-rate range "
                                "test finds it.", flag_values=flag_values)
        else:
            flags.DEFINE_float(name, None, help_text, flag_values=flag_values)
    for name, help_text in _STEPS.items():
        flags.DEFINE_integer(name, None, help_text, flag_values=flag_values)
    for name, help_text in _BOOLS.items():
        flags.DEFINE_boolean(name, None, help_text, flag_values=flag_values)
    for name, (allowed, help_text) in _ENUMS.items():
        flags.DEFINE_enum(name, None, allowed, help_text, flag_values=flag_values)
    flags.DEFINE_list("boundaries", None, "piecewise_constant, piecewise_interpolate: steps where the rate "
                      "changes.", flag_values=flag_values)
    flags.DEFINE_list("values", None, "piecewise_constant: the rates, one more than boundaries; "
                      "piecewise_interpolate: the rates at step 0 and at each boundary.", flag_values=flag_values)


def given(flag_values=flags.FLAGS):
    """The schedule parameters set on the command line (or in a flagfile), as Python values."""
    names = [*_FLOATS, *_STEPS, *_BOOLS, *_ENUMS, "boundaries", "values"]
    values = {name: flag_values[name].value for name in names if flag_values[name].value is not None}
    if values.get("initial_lr", "auto") != "auto":
        try:
            values["initial_lr"] = float(values["initial_lr"])
        except ValueError:
            raise validation.ParameterError("initial_lr", "a number (or, for the trainer, auto)",
                                            values["initial_lr"]) from None
    for name, convert in (("boundaries", int), ("values", float)):
        if name in values:
            try:
                values[name] = [convert(v) for v in values[name]]
            except ValueError:
                raise validation.ParameterError(name, f"a comma-separated list of {convert.__name__}s",
                                                ",".join(values[name])) from None
    return values


def build(name, params, run_steps):
    """Builds schedule `name` from `params`, filling unset lengths and rates from a run of `run_steps` steps.

    Parameters of other schedules in `params` are ignored, so one set of flags can serve several curves.

    >>> build("cosine_restarts", {"initial_lr": 0.1, "cycle_multiplier": 2.0}, run_steps=1000)
    CosineRestarts(initial_lr=0.1, min_lr=0.0, warmup_steps=25, cycle_steps=250, cycle_multiplier=2.0, \
peak_decay=1.0, max_cycles=None)
    """
    expected = registry.parameters(name)
    params = {k: v for k, v in params.items() if k in expected}
    for parameter, default in {"initial_lr": 1e-3, "min_lr": 0.0, **_defaults(name, params, run_steps)}.items():
        if parameter in expected:
            params.setdefault(parameter, default)
    missing = [p for p, d in expected.items() if d is inspect.Parameter.empty and p not in params]
    if missing:
        raise validation.ParameterError(missing[0], f"set for schedule {name}", None)
    return registry.get(name, **params)


def _defaults(name, params, run_steps):
    run_steps = max(int(run_steps), 1)
    if name in ("polynomial", "exponential", "inverse_time"):
        return {"decay_steps": run_steps, "decay_rate": 0.1 if name == "exponential" else 9.0}
    if name == "cosine":
        return {"warmup_steps": run_steps // 20, "total_steps": run_steps}
    if name == "one_cycle":
        return {"total_steps": run_steps}
    if name == "power_decay":
        return {"warmup_steps": run_steps // 20}
    if name == "cyclic":
        return {"up_steps": max(run_steps // 8, 1)}
    if name in ("cosine_restarts", "polynomial_restarts"):
        cycle_steps = params.get("cycle_steps", max(run_steps // 4, 1))
        return {"cycle_steps": cycle_steps, "warmup_steps": cycle_steps // 10}
    if name == "warmup_stable_decay":
        warmup_steps = params.get("warmup_steps", run_steps // 20)
        decay_steps = params.get("decay_steps", max(run_steps // 5, 1))
        return {"warmup_steps": warmup_steps, "decay_steps": decay_steps,
                "stable_steps": max(run_steps - warmup_steps - decay_steps, 0)}
    return {}
