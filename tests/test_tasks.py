"""The loop on the user's own tasks: a compiled Keras model and unbatched tf.data datasets of any structure.

References are computed here, independently of the trainer: Keras's own losses, metrics and schedules on the
batches index_shuffle gives, numpy float64 SGD, and model.evaluate.
"""
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import trainer
from test_distribute_support import finish, free_ports, relative_differences
from test_trainer_support import REPO, checkpoint_values, scalars
from trainer import data
from trainer.config import ConfigError

SCENARIO = os.path.join(REPO, 'tests', 'task_scenario.py')


def _batch_indices(step, num_examples, batch_size, seed):
    """The examples of training step `step`: positions of epoch step // per_epoch's index_shuffle permutation."""
    per_epoch = num_examples // batch_size
    epoch, position = divmod(step, per_epoch)
    positions = tf.range(position * batch_size, (position + 1) * batch_size, dtype=tf.int64)
    return tf.random.experimental.index_shuffle(positions, seed=tf.constant([seed, epoch], tf.int64),
                                                max_index=num_examples - 1).numpy()


def _linear_regression(count=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, 10)).astype('float32')
    y = (x @ rng.normal(size=10) + 0.5).astype('float32')
    return x, y


def test_regression_logs_kerass_mse_and_mae_of_each_batch_at_the_rate_of_the_keras_schedule(tmp_path):
    x, y = _linear_regression()
    schedule = keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=3, decay_rate=0.8)
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(
        1, kernel_initializer=keras.initializers.Constant(0.1), bias_initializer='zeros')])
    model.compile(loss='mse', metrics=['mae'])
    steps, batch_size, seed = 10, 16, 3
    result = trainer.train(model, tf.data.Dataset.from_tensor_slices((x, y)), model_dir=str(tmp_path / 'run'),
                           optimizer=keras.optimizers.SGD(learning_rate=123.0), schedule=schedule,
                           batch_size=batch_size, train_steps=steps, steps_per_loop=3, seed=seed,
                           interactive=False)
    logged = scalars(tmp_path / 'run' / 'train', 'batch')
    # The reference: SGD in float64 on the same batches, at the Keras schedule's rate of each step.
    w, b = np.full(10, 0.1), 0.0
    mse, mae = keras.losses.MeanSquaredError(), keras.metrics.MeanAbsoluteError()
    # In graph, as the optimizer reads it (Grappler may turn the schedule's division into a product: 1 ulp off eager).
    in_graph = tf.function(lambda step: schedule(step))
    for step in range(steps):
        rows = _batch_indices(step, len(x), batch_size, seed)
        xs, ys = x[rows].astype(np.float64), y[rows].astype(np.float64)
        prediction = xs @ w + b
        assert logged['loss'][step] == (step, pytest.approx(float(mse(ys[:, None], prediction[:, None])), rel=1e-5))
        mae.reset_state()
        mae.update_state(ys[:, None], prediction[:, None])
        assert logged['mae'][step] == (step, pytest.approx(float(mae.result()), rel=1e-5))
        rate = float(in_graph(tf.constant(step, tf.int64)))
        assert logged['learning_rate'][step] == (step, rate)
        assert rate == pytest.approx(0.05 * 0.8 ** (step / 3), rel=1e-6)
        error = 2.0 * (prediction - ys) / batch_size
        w, b = w - rate * xs.T @ error, b - rate * error.sum()
    kernel, bias = result.model.get_weights()
    np.testing.assert_allclose(kernel[:, 0], w, rtol=1e-5)
    np.testing.assert_allclose(bias[0], b, rtol=1e-5)
    # The optimizer trained is a copy of the instance given (its class and config), at the schedule's rate.
    assert type(result.model.optimizer) is keras.optimizers.SGD
    recorded = json.loads((tmp_path / 'run' / 'config.json').read_text())
    assert recorded['optimizer'] == 'SGD' and recorded['optimizer.momentum'] == 0.0 and 'optimizer.name' not in recorded
    assert recorded['schedule.config']['decay_rate'] == 0.8 and recorded['loss'] == 'mse'


def test_evaluation_equals_model_evaluate_with_a_partial_last_batch(tmp_path):
    x, y = _linear_regression(count=100)
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(4, activation='relu'), keras.layers.Dense(1)])
    model.compile(loss='mse', metrics=['mae', keras.metrics.RootMeanSquaredError(name='rmse')])
    pairs = tf.data.Dataset.from_tensor_slices((x, y))
    result = trainer.train(model, pairs, pairs.take(70), model_dir=str(tmp_path / 'run'), schedule=0.01,
                           batch_size=16, epochs=2, interactive=False)
    expected = result.model.evaluate(x[:70], y[:70], batch_size=16, verbose=0, return_dict=True)
    assert sorted(result.final) == ['loss', 'mae', 'rmse', 'step']
    for name in ('loss', 'mae', 'rmse'):
        assert result.final[name] == pytest.approx(expected[name], rel=1e-6)
    assert [e['step'] for e in result.evaluations] == [6, 12]
    assert scalars(tmp_path / 'run' / 'eval', 'epoch')['rmse'][-1] == (12, pytest.approx(expected['rmse'], rel=1e-6))
    assert result.best('loss') == min(result.evaluations, key=lambda e: e['loss'])
    assert result.directions['rmse'] == 'down'


def test_the_loss_and_metrics_keywords_win_over_compile(tmp_path):
    x, y = _linear_regression()
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(
        1, kernel_initializer=keras.initializers.Constant(0.1), bias_initializer='zeros')])
    model.compile(loss='mae', metrics=['mse'])
    trainer.train(model, tf.data.Dataset.from_tensor_slices((x, y)), model_dir=str(tmp_path / 'run'),
                  loss=keras.losses.MeanSquaredError(), metrics=[keras.metrics.MeanAbsoluteError(name='error')],
                  schedule=lambda step: 0.0, batch_size=16, train_steps=2, seed=0, interactive=False)
    logged = scalars(tmp_path / 'run' / 'train', 'batch')
    assert set(logged) == {'learning_rate', 'loss', 'error'}
    assert set(scalars(tmp_path / 'run' / 'train', 'epoch')) == {'loss', 'error'}
    rows = _batch_indices(0, len(x), 16, 0)
    prediction = x[rows] @ np.full(10, 0.1, np.float32)
    assert logged['loss'][0] == (0, pytest.approx(float(np.mean((prediction - y[rows]) ** 2)), rel=1e-5))
    assert logged['error'][0] == (0, pytest.approx(float(np.mean(np.abs(prediction - y[rows]))), rel=1e-5))
    recorded = json.loads((tmp_path / 'run' / 'config.json').read_text())
    assert recorded['loss'] == {'class': 'MeanSquaredError', 'config': {'reduction': 'sum_over_batch_size'}}


def test_token_ids_above_255_reach_the_model_untouched(tmp_path):
    rng = np.random.default_rng(4)
    ids = rng.integers(0, 5000, size=(512, 6)).astype('int32')
    labels = (ids[:, 0] >= 2500).astype('int64')  # ids mod 256 would carry almost nothing of this

    def model(spec):
        assert spec[0].dtype == tf.int32
        built = keras.Sequential([keras.Input(spec[0].shape, dtype='int32'), keras.layers.Embedding(5000, 8),
                                  keras.layers.Flatten(), keras.layers.Dense(2)])
        built.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=['accuracy'])
        return built
    pairs = tf.data.Dataset.from_tensor_slices((ids, labels))
    result = trainer.train(model, pairs, pairs, model_dir=str(tmp_path / 'run'), schedule=0.05, batch_size=32,
                           epochs=6, interactive=False)
    assert result.final['accuracy'] > 0.9
    batch = data.TrainBatches(pairs, 512, 32, seed=0)(7)
    assert batch[0].dtype == tf.int32 and int(tf.reduce_max(batch[0])) > 255
    assert {tuple(row) for row in batch[0].numpy()} <= {tuple(row) for row in ids}
    serve = tf.saved_model.load(result.export_dir).signatures['serving_default']
    assert list(serve.structured_input_signature[1]) == ['inputs']  # the Input was not named
    logits = serve(inputs=tf.constant(ids[:4]))['outputs']
    np.testing.assert_allclose(logits, result.model(ids[:4]), rtol=1e-6)


def _bright_quadrant_images(count=384, seed=6):
    """8x8 uint8 images; the label is the quadrant that is brighter than the rest."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 120, size=(count, 8, 8, 1)).astype(np.uint8)
    labels = rng.integers(0, 4, size=count)
    for image, label in zip(images, labels):
        row, column = divmod(int(label), 2)
        image[4 * row:4 * row + 4, 4 * column:4 * column + 4] += 120
    return images, labels.astype(np.int64)


def test_float_images_train_as_well_as_the_same_images_as_uint8_with_rescaling(tmp_path):
    images, labels = _bright_quadrant_images()

    def model(rescale):
        def build(spec):
            inputs = keras.Input(spec[0].shape, dtype=spec[0].dtype)
            x = keras.layers.Rescaling(1 / 255)(inputs) if rescale else inputs
            x = keras.layers.Conv2D(8, 3, activation='relu')(x)
            outputs = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(x))
            built = keras.Model(inputs, outputs)
            built.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=['accuracy'])
            return built
        return build
    accuracies = {}
    for name, pixels, rescale in (('uint8', images, True), ('float', images.astype(np.float32) / 255, False)):
        pairs = tf.data.Dataset.from_tensor_slices((pixels, labels))
        accuracies[name] = trainer.train(model(rescale), pairs, pairs, model_dir=str(tmp_path / name),
                                         schedule=0.01, batch_size=32, epochs=8, seed=1,
                                         interactive=False).final['accuracy']
    assert accuracies['uint8'] > 0.9
    assert abs(accuracies['float'] - accuracies['uint8']) <= 0.03, accuracies


def test_dict_features_sample_weights_and_a_loss_per_output(tmp_path):
    sys.path.insert(0, os.path.join(REPO, 'tests'))
    from task_scenario import two_input_data, two_input_model
    examples = two_input_data()
    seed, batch_size = 2, 16
    result = trainer.train(two_input_model, examples, examples.take(48), model_dir=str(tmp_path / 'run'),
                           schedule=0.01, batch_size=batch_size, train_steps=24, seed=seed, interactive=False)
    logged = scalars(tmp_path / 'run' / 'train', 'batch')
    assert {'loss', 'value_loss', 'kind_loss', 'kind_accuracy', 'learning_rate'} <= set(logged)
    # Step 0 on the model's initial weights, which the same seed gives the same model function again.
    keras.utils.set_random_seed(seed)
    initial = two_input_model(examples.element_spec)
    features, labels, weights = next(iter(examples.batch(1000)))
    rows = _batch_indices(0, 192, batch_size, seed)
    pick = lambda nest: tf.nest.map_structure(lambda t: tf.gather(t, rows), nest)  # noqa: E731
    outputs = initial(pick(features))
    value = keras.losses.MeanSquaredError()(pick(labels)['value'], outputs['value'], sample_weight=pick(weights))
    kind = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
        pick(labels)['kind'], outputs['kind'], sample_weight=pick(weights))
    assert logged['loss'][0] == (0, pytest.approx(float(value + kind), rel=1e-5))
    assert logged['value_loss'][0] == (0, pytest.approx(float(value), rel=1e-5))
    assert sorted(result.final) == ['kind_accuracy', 'kind_loss', 'loss', 'step', 'value_loss']
    serve = tf.saved_model.load(result.export_dir).signatures['serving_default']
    assert sorted(serve.structured_input_signature[1]) == ['category', 'numbers']
    assert sorted(serve.structured_outputs) == ['kind', 'value']
    served = serve(numbers=features['numbers'][:3], category=features['category'][:3])
    direct = result.model({name: values[:3] for name, values in features.items()})
    for name in ('kind', 'value'):
        np.testing.assert_allclose(served[name], direct[name], rtol=1e-6)


class HuberModel(keras.Model):
    """A model whose loss is its own compute_loss (Keras's way to customize it): Huber with delta 1, by hand."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(1, kernel_initializer=keras.initializers.Constant(0.3))

    def call(self, x):
        return self.dense(x)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        error = tf.abs(tf.squeeze(y_pred, -1) - y)
        per_example = tf.where(error <= 1.0, 0.5 * error ** 2, error - 0.5)
        return tf.nn.compute_average_loss(per_example)  # the replica's share of the global batch's mean


def test_a_compute_loss_override_is_the_loss_that_trains(tmp_path):
    x, y = _linear_regression()
    y = 3.0 * y  # errors above the Huber delta too
    model = HuberModel()
    model.compile()  # no loss: compute_loss is the loss
    steps, batch_size, seed = 6, 16, 0
    trainer.train(model, tf.data.Dataset.from_tensor_slices((x, y)), model_dir=str(tmp_path / 'run'),
                  optimizer=keras.optimizers.SGD(), schedule=0.1, batch_size=batch_size, train_steps=steps,
                  seed=seed, interactive=False)
    logged = scalars(tmp_path / 'run' / 'train', 'batch')
    w, b = np.full(10, 0.3), 0.0
    for step in range(steps):
        rows = _batch_indices(step, len(x), batch_size, seed)
        xs, ys = x[rows].astype(np.float64), y[rows].astype(np.float64)
        error = xs @ w + b - ys
        huber = np.where(np.abs(error) <= 1, 0.5 * error ** 2, np.abs(error) - 0.5).mean()
        assert logged['loss'][step] == (step, pytest.approx(huber, rel=1e-5))
        gradient = np.clip(error, -1, 1) / batch_size
        w, b = w - 0.1 * xs.T @ gradient, b - 0.1 * gradient.sum()


def _pairs(x, y):
    return tf.data.Dataset.from_tensor_slices((x, y))


def _regression_model(spec):
    built = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    built.compile(loss='mse')
    return built


def _classifier(spec):
    built = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
    built.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return built


FEATURES = np.zeros([32, 3], np.float32)
LABELS = np.zeros([32], np.float32)
unknown_shape = tf.data.Dataset.from_generator(
    lambda: iter([(np.zeros(n % 3 + 1, np.float32), 0.0) for n in range(32)]),
    output_signature=(tf.TensorSpec([None], tf.float32), tf.TensorSpec([], tf.float32))).apply(
    tf.data.experimental.assert_cardinality(32))
BAD = [
    ('batched', _regression_model, _pairs(FEATURES, LABELS).batch(8), None,
     'train_data is batched; pass it unbatched'),
    # Batches of a fixed size may be examples on purpose (sequences cut from a stream): the model says no.
    ('batched, no remainder', _regression_model, _pairs(FEATURES, LABELS).batch(2, drop_remainder=True), None,
     'the model, its loss or its metrics do not fit the data: ValueError: Exception encountered when calling '
     'Sequential.call(). Invalid input shape'),
    ('infinite', _regression_model, _pairs(FEATURES, LABELS).repeat(), None, 'train_data is infinite'),
    ('unknown size', _regression_model, _pairs(FEATURES, LABELS).filter(lambda a, b: True), None,
     'train_data has an unknown number of examples'),
    ('unknown shape', _regression_model, unknown_shape, None, 'train_data[0] has shape [None], not fixed'),
    ('shuffles', _regression_model, _pairs(FEATURES, LABELS).shuffle(8), None, 'train_data shuffles'),
    ('not pairs', _regression_model, tf.data.Dataset.from_tensor_slices(FEATURES), None,
     'train_data must yield (features, labels) or (features, labels, sample_weights) tuples'),
    ('eval shape', _regression_model, _pairs(FEATURES, LABELS), _pairs(np.zeros([8, 4], np.float32), LABELS[:8]),
     'eval_data[0] is float32[4]; train_data has float32[3]'),
    ('eval structure', _regression_model, _pairs(FEATURES, LABELS), tf.data.Dataset.from_tensor_slices(
        ({'x': FEATURES}, LABELS)), "eval_data has elements ({'x': 'float32[3]'}, 'float32[]'); expected"),
    ('float class ids', _classifier, _pairs(FEATURES, LABELS + 0.5), None,
     'the labels are float32, but the loss SparseCategoricalCrossentropy takes integer class ids'),
    ('string labels', _regression_model, _pairs(FEATURES, np.array(['a'] * 32)), None,
     'the model, its loss or its metrics do not fit the data: '),
    ('labels the loss cannot take', _classifier, _pairs(FEATURES, np.zeros([32, 7], np.int64)), None,
     'the model, its loss or its metrics do not fit the data: '),
]


@pytest.mark.parametrize('model, train_data, eval_data, message', [case[1:] for case in BAD],
                         ids=[case[0] for case in BAD])
def test_each_bad_dataset_is_one_line_before_anything_is_written(tmp_path, model, train_data, eval_data, message):
    with pytest.raises((ConfigError, data.DataError)) as raised:
        # input='memory': streamed (the default for data of unknown size), an infinite or unknown-size dataset
        # trains (tests/test_stream.py).
        trainer.train(model, train_data, eval_data, model_dir=str(tmp_path / 'run'), schedule=0.01, batch_size=8,
                      train_steps=2, interactive=False, input='memory')
    assert str(raised.value).startswith(message), str(raised.value)
    assert '\n' not in str(raised.value)
    assert not (tmp_path / 'run').exists()


def test_pipelines_that_yield_fixed_examples_in_a_fixed_order_are_accepted(tmp_path):
    def sequence_model(spec):
        built = keras.Sequential([keras.Input((10,), dtype='int64'), keras.layers.Embedding(1000, 4),
                                  keras.layers.Flatten(), keras.layers.Dense(1)])
        built.compile(loss='mse')
        return built
    # Sequences cut from a stream of ids (batch with drop_remainder, then split): examples, not batches.
    sequences = tf.data.Dataset.range(1000).batch(11, drop_remainder=True).map(lambda ids: (ids[:-1], ids[-1]))
    # Batched and unbatched again (tf.data no longer knows the size: it is stated), then mapped.
    pairs = (_pairs(FEATURES, LABELS).batch(5).unbatch().apply(tf.data.experimental.assert_cardinality(32))
             .map(lambda x, y: (x + 1.0, y)))
    for name, model, examples in (('sequences', sequence_model, sequences), ('pairs', _regression_model, pairs)):
        result = trainer.train(model, examples, model_dir=str(tmp_path / name), schedule=0.01, batch_size=8,
                               train_steps=3, interactive=False)
        assert result.step == 3


@pytest.mark.parametrize('settings, message', [
    ({'schedule': lambda step: 1 / 0}, 'schedule=test_tasks.<lambda> fails at step 0: ZeroDivisionError'),
    ({'schedule': lambda step: -1.0}, 'schedule=test_tasks.<lambda> gives the rate -1.0 at step 0'),
    ({'schedule': 'nope'}, "--schedule='nope' is not one of:"),
    ({'optimizer': object()}, 'optimizer=<object object'),
    ({'optimizer': keras.optimizers.SGD(), 'momentum': 0.5}, 'momentum= applies to a named optimizer'),
    ({'num_class': 3}, 'num_class= is not a setting; the settings are: augment, batch_size'),
    ({'model': 'cnn'}, 'the built-in models take (image [H, W, C], integer label) examples; train_data has'),
    ({'model': lambda spec: 'not a model'}, 'the model function returned str, not a keras.Model'),
])
def test_bad_python_settings_are_one_line_before_anything_is_written(tmp_path, settings, message):
    arguments = {'model': _regression_model, 'schedule': 0.01, **settings}
    with pytest.raises((ConfigError, data.DataError)) as raised:
        trainer.train(arguments.pop('model'), _pairs(FEATURES, LABELS), model_dir=str(tmp_path / 'run'),
                      batch_size=8, train_steps=2, interactive=False, **arguments)
    assert str(raised.value).startswith(message), str(raised.value)
    assert not (tmp_path / 'run').exists()


def test_a_used_optimizer_instance_is_refused(tmp_path):
    used = keras.optimizers.SGD()
    used.build([tf.Variable(1.0)])
    with pytest.raises(ConfigError, match='optimizer=SGD has already been used'):
        trainer.train(_regression_model, _pairs(FEATURES, LABELS), model_dir=str(tmp_path / 'run'),
                      optimizer=used, batch_size=8, train_steps=2, interactive=False)


def test_a_rerun_in_the_same_process_resumes_and_other_data_is_refused(tmp_path):
    # New Keras objects in the same process get new automatic names (sequential_1, sgd_1): not part of a run.
    def run(y):
        model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(1)])
        model.compile(loss='mse', metrics=[keras.metrics.MeanAbsoluteError()])
        return trainer.train(model, tf.data.Dataset.from_tensor_slices((x, y)), model_dir=str(tmp_path / 'run'),
                             optimizer=keras.optimizers.SGD(), batch_size=16, train_steps=4,
                             schedule=keras.optimizers.schedules.CosineDecay(0.01, 4), interactive=False)
    x, y = _linear_regression()
    first = run(y)
    again = run(y)
    assert again.already_finished and again.evaluations == first.evaluations
    with pytest.raises(ConfigError, match=r'holds a run with train_data_sha256=.*rerun with the same settings'):
        run(y + 1.0)


def test_import_trainer_exposes_its_modules():
    done = subprocess.run([sys.executable, '-c', 'import trainer; print(trainer.data.TrainBatches.__name__, '
                           'trainer.train.__name__, trainer.faults.Interrupted.__name__)'],
                          cwd=REPO, capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3'))
    assert done.stdout.split() == ['TrainBatches', 'train', 'Interrupted'], done.stderr[-2000:]


# --- in processes of their own: strategies, SIGTERM ---------------------------------------------------------

def _scenario(task, model_dir, *args, wait=True, env=None):
    command = [sys.executable, SCENARIO, task, str(model_dir), *args]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', **(env or {}))
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    if not wait:
        return process
    (code, out, err), = finish([process])
    assert code == 0 and out.strip().endswith('done'), err[-3000:]
    return out


@pytest.fixture(scope='module')
def one_device(tmp_path_factory):
    base = tmp_path_factory.mktemp('tasks_one_device')
    for task in ('regression', 'two_inputs', 'quantile'):
        _scenario(task, base / task)
    return base


def _assert_same_run(model_dir, reference):
    differences = relative_differences(checkpoint_values(reference), checkpoint_values(model_dir))
    assert max(differences.values()) <= 1e-5, differences
    logged, expected = scalars(model_dir / 'train', 'batch'), scalars(reference / 'train', 'batch')
    for tag in expected:
        assert [s for s, _ in logged[tag]] == [s for s, _ in expected[tag]] == list(range(40)), tag
        np.testing.assert_allclose([v for _, v in logged[tag]], [v for _, v in expected[tag]], rtol=1e-5)


@pytest.mark.parametrize('task', ['regression', 'two_inputs', 'quantile'])
def test_two_mirrored_cpu_replicas_match_one_device(tmp_path, one_device, task):
    out = _scenario(task, tmp_path / task, '--strategy=mirrored', '--cpu_devices=2')
    assert 'MirroredStrategy: 2 replica(s), per-replica batch 8' in out
    _assert_same_run(tmp_path / task, one_device / task)


def test_two_workers_match_one_device_on_the_regression(tmp_path, one_device):
    addresses = [f'127.0.0.1:{port}' for port in free_ports(2)]
    workers = [_scenario('regression', tmp_path / 'cluster', '--strategy=multi_worker', wait=False, env={
        'TF_CONFIG': json.dumps({'cluster': {'worker': addresses}, 'task': {'type': 'worker', 'index': index}}),
        'TMPDIR': str(tmp_path)}) for index in range(2)]
    for code, out, err in finish(workers):
        assert code == 0 and out.strip().endswith('done'), err[-3000:]
    _assert_same_run(tmp_path / 'cluster', one_device / 'regression')


@pytest.mark.parametrize('schedule', ['keras', 'callable'])
def test_a_user_schedule_resumes_after_sigterm_to_the_uninterrupted_weights(tmp_path, schedule):
    steps = [f'--schedule={schedule}', '--train_steps=3000']
    _scenario('regression', tmp_path / 'whole', *steps)
    process = _scenario('regression', tmp_path / 'resumed', *steps, wait=False)
    deadline = time.monotonic() + 120
    while not (tmp_path / 'resumed' / 'checkpoint').exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    (code, out, err), = finish([process])
    assert code == 0 and 'stopped by SIGTERM at step' in out + err, (out[-2000:], err[-2000:])
    stopped = int(checkpoint_values(tmp_path / 'resumed')['step/.ATTRIBUTES/VARIABLE_VALUE'])
    assert 0 < stopped < 3000
    out = _scenario('regression', tmp_path / 'resumed', *steps)
    assert f'resuming {tmp_path / "resumed"} at step {stopped}/3000' in out
    whole, resumed = checkpoint_values(tmp_path / 'whole'), checkpoint_values(tmp_path / 'resumed')
    assert sorted(whole) == sorted(resumed)
    for name in whole:
        np.testing.assert_array_equal(resumed[name], whole[name], err_msg=name)

