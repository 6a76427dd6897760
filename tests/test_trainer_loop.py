"""The training loop in process, through the Python API: logged series, tracing, export."""
import glob
import json
import math
import os
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

import schedules
import trainer
from trainer import data, experiment, faults, loop, models, optimizers, task, tfds_data
from trainer.config import Config, ConfigError
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.backend.event_processing import plugin_event_accumulator as accumulator
from test_trainer_support import scalars, tags, tiny_dataset

BATCH, EXAMPLES, EPOCHS = 8, 64, 3
STEPS_PER_EPOCH = EXAMPLES // BATCH
TOTAL = EPOCHS * STEPS_PER_EPOCH
# Restarts inside the run: cycles start at steps 0, 7, 17.5 and 33.25.
RESTARTS = dict(initial_lr=0.01, min_lr=0.001, warmup_steps=2, cycle_steps=7, cycle_multiplier=1.5)


def _ready(model, optimizer, examples):
    """What the controller does before a Loop: compile with the optimizer, build the metrics on two examples."""
    task.compile_for_run(model, optimizer)
    task.check(model, examples, examples.element_spec, tf.distribute.get_strategy())
    optimizer.build(model.trainable_variables)


def reference_cosine_restarts(step, initial_lr, min_lr, warmup_steps, cycle_steps, cycle_multiplier):
    """SGDR with warmup, straight from its definition (float64, no TensorFlow)."""
    start, length, warmup = 0.0, float(cycle_steps), float(warmup_steps)
    while step >= start + length:
        start, length, warmup = start + length, length * cycle_multiplier, warmup * cycle_multiplier
    t = step - start
    if t < warmup:
        return min_lr + (initial_lr - min_lr) * t / warmup
    return min_lr + (initial_lr - min_lr) * (1 + math.cos(math.pi * (t - warmup) / (length - warmup))) / 2


@pytest.fixture(scope='module')
def finished(tmp_path_factory):
    """A finished 3-epoch run of the mlp with cosine restarts, steps_per_loop not dividing the epoch."""
    model_dir = str(tmp_path_factory.mktemp('run'))
    result = trainer.train('mlp', tiny_dataset(EXAMPLES, seed=1), eval_data=tiny_dataset(20, seed=2),
                           schedule='cosine_restarts', schedule_params=RESTARTS, model_dir=model_dir,
                           batch_size=BATCH, epochs=EPOCHS, steps_per_loop=3, checkpoint_steps=5,
                           interactive=False)
    return result


def test_learning_rate_is_the_schedule_at_every_step(finished):
    logged = scalars(os.path.join(finished.model_dir, 'train'), 'batch')['learning_rate']
    assert [step for step, _ in logged] == list(range(TOTAL))
    expected = [reference_cosine_restarts(s, **RESTARTS) for s in range(TOTAL)]
    np.testing.assert_allclose([rate for _, rate in logged], expected, rtol=1e-6)
    # The restarts are inside the run: the rate climbs back to the peak twice.
    rates = [rate for _, rate in logged]
    assert rates[7] == pytest.approx(0.001, rel=1e-6) and rates[10] == pytest.approx(0.01, rel=1e-6)


def test_loss_and_accuracy_every_step_and_exact_tags(finished):
    train_dir = os.path.join(finished.model_dir, 'train')
    series = scalars(train_dir, 'batch')
    for tag in ('loss', 'accuracy'):
        assert [step for step, _ in series[tag]] == list(range(TOTAL))
    assert all(v in {k / BATCH for k in range(BATCH + 1)} for _, v in series['accuracy'])
    assert all(np.isfinite(v) and v > 0 for _, v in series['loss'])
    assert tags(train_dir) == {'batch/learning_rate': 'scalars', 'batch/loss': 'scalars', 'batch/accuracy': 'scalars',
                               'epoch/loss': 'scalars', 'epoch/accuracy': 'scalars',
                               'throughput/steps_per_sec': 'scalars', 'throughput/examples_per_sec': 'scalars',
                               'batch/schedule': 'images', 'flags': 'text'}
    # One throughput point per loop call; a call ends after 3 steps or at a checkpoint (every 5) or epoch end (8).
    calls = [step for step, _ in scalars(train_dir, 'throughput')['steps_per_sec']]
    assert calls == [3, 5, 8, 10, 13, 15, 16, 19, 20, 23, 24]


def test_epoch_means_are_the_means_of_the_logged_steps(finished):
    train_dir = os.path.join(finished.model_dir, 'train')
    steps, means = scalars(train_dir, 'batch'), scalars(train_dir, 'epoch')
    for tag in ('loss', 'accuracy'):
        assert [s for s, _ in means[tag]] == [STEPS_PER_EPOCH * (e + 1) for e in range(EPOCHS)]
        values = np.array([v for _, v in steps[tag]], np.float64).reshape(EPOCHS, STEPS_PER_EPOCH)
        np.testing.assert_allclose([v for _, v in means[tag]], values.mean(axis=1), rtol=1e-6)


def test_eval_scalars_after_each_epoch_on_the_cards_of_the_epoch_means(finished):
    eval_dir = os.path.join(finished.model_dir, 'eval')
    assert tags(eval_dir) == {'epoch/loss': 'scalars', 'epoch/accuracy': 'scalars'}
    series = scalars(eval_dir, 'epoch')
    epoch_ends = [STEPS_PER_EPOCH * (e + 1) for e in range(EPOCHS)]
    assert [s for s, _ in series['accuracy']] == epoch_ends
    assert [round(e['accuracy'], 6) for e in finished.evaluations] == [round(v, 6) for _, v in series['accuracy']]


def test_nothing_is_written_to_the_model_dir_run_itself(finished):
    assert tags(finished.model_dir) == {}


def test_schedule_image_after_each_epoch_marks_the_step(finished):
    train_dir = os.path.join(finished.model_dir, 'train')
    steps = [e.step for path in glob.glob(os.path.join(train_dir, 'events.out.tfevents.*'))
             for e in event_file_loader.EventFileLoader(path).Load()
             for v in e.summary.value if v.tag == 'batch/schedule']
    assert steps == [0] + [STEPS_PER_EPOCH * (e + 1) for e in range(EPOCHS)]


def test_flags_text_has_what_was_set_and_the_schedule_in_steps(finished):
    train_dir = os.path.join(finished.model_dir, 'train')
    texts = [tf.make_ndarray(v.tensor).item().decode() for path in glob.glob(os.path.join(train_dir, 'events.*'))
             for e in event_file_loader.EventFileLoader(path).Load() for v in e.summary.value if v.tag == 'flags']
    assert len(texts) == 1
    rows = dict(line.replace('`', '').split(' | ') for line in texts[0].splitlines()[2:])
    assert rows['batch_size'] == str(BATCH) and rows['schedule'] == 'cosine_restarts'
    assert rows['schedule.cycle_steps'] == '7' and rows['schedule.warmup_steps'] == '2'
    assert 'None' not in rows.values()


def test_global_step_and_optimizer_iterations_agree(finished):
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(finished.model_dir))
    names = reader.get_variable_to_shape_map()
    step = [n for n in names if n.startswith('step/')]
    iterations = [n for n in names if n.startswith('optimizer/') and 'iteration' in n]
    assert len(step) == 1 and len(iterations) == 1
    assert reader.get_tensor(step[0]) == TOTAL == reader.get_tensor(iterations[0])
    assert finished.step == TOTAL


def test_export_loads_and_predicts_probabilities(finished):
    serving = tf.saved_model.load(finished.export_dir).signatures['serving_default']
    images = np.stack([image for image, _ in tiny_dataset(5, seed=3).as_numpy_iterator()])
    probabilities = serving(images=tf.constant(images))['probabilities'].numpy()
    assert probabilities.shape == (5, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    expected = tf.nn.softmax(finished.model(images.astype(np.float32))).numpy()
    np.testing.assert_allclose(probabilities, expected, rtol=1e-5, atol=1e-6)


def _event_files(model_dir):
    return sorted(glob.glob(os.path.join(model_dir, '**', 'events.out.tfevents.*'), recursive=True))


def test_rerun_of_a_finished_run_trains_nothing(finished):
    events = _event_files(finished.model_dir)
    again = trainer.train('mlp', tiny_dataset(EXAMPLES, seed=1), eval_data=tiny_dataset(20, seed=2),
                          schedule='cosine_restarts', schedule_params=RESTARTS, model_dir=finished.model_dir,
                          batch_size=BATCH, epochs=EPOCHS, steps_per_loop=3, checkpoint_steps=5,
                          interactive=False)
    assert again.already_finished and again.step == TOTAL
    assert again.evaluations == finished.evaluations
    assert _event_files(finished.model_dir) == events


def test_no_retracing_after_the_first_call(tmp_path):
    info = tfds_data.DatasetInfo('tiny', (8, 8, 1), 2, ('0', '1'))
    strategy = tf.distribute.OneDeviceStrategy('/cpu:0')
    schedule = schedules.get('cosine', initial_lr=0.01, min_lr=0.0, warmup_steps=3, total_steps=40)
    with strategy.scope():
        model = models.build('mlp', info)
        step = tf.Variable(0, dtype=tf.int64)
        optimizer = optimizers.build('sgd', lambda: schedule(step))
        _ready(model, optimizer, tiny_dataset(EXAMPLES, seed=1))
    writer = tf.summary.create_file_writer(str(tmp_path))
    batches = data.TrainBatches(tiny_dataset(EXAMPLES, seed=1), EXAMPLES, BATCH, seed=0)
    steps = loop.Loop(model, optimizer, strategy, step, writer, batches)
    evaluation = strategy.experimental_distribute_dataset(data.eval_batches(tiny_dataset(20, seed=2), BATCH))
    for n in (1, 5, 2, 7, 3):
        steps.train(tf.constant(n, tf.int64))
        steps.evaluate(iter(evaluation))
    assert steps.train.experimental_get_tracing_count() == 1
    assert steps.evaluate.experimental_get_tracing_count() == 1
    assert int(step.numpy()) == 18 and int(optimizer.iterations.numpy()) == 18


@pytest.mark.parametrize('mode', ['stop', 'skip'])
def test_repeat_step_runs_the_whole_step_with_its_finiteness_check(mode):
    """trainer.bench's ceiling: the replica step as the loop runs it, its non-finite verdict included."""
    info = tfds_data.DatasetInfo('tiny', (8, 8, 1), 2, ('0', '1'))
    strategy = tf.distribute.OneDeviceStrategy('/cpu:0')
    with strategy.scope():
        model = models.build('mlp', info)
        step = tf.Variable(0, dtype=tf.int64)
        optimizer = optimizers.build('sgd', lambda: tf.constant(0.01))
        _ready(model, optimizer, tiny_dataset(EXAMPLES, seed=1))
    batches = data.TrainBatches(tiny_dataset(EXAMPLES, seed=1), EXAMPLES, BATCH, seed=0)
    steps = loop.Loop(model, optimizer, strategy, step, tf.summary.create_noop_writer(), batches,
                      on_nonfinite=mode)
    images = tf.cast(tf.random.stateless_uniform([BATCH, 8, 8, 1], seed=[1, 2], maxval=255.0), tf.uint8)
    labels = tf.constant([0, 1] * (BATCH // 2), tf.int64)
    values, bad = steps.repeat_step((images, labels), 4)
    assert np.isfinite(float(values['loss'])) and 0.0 <= float(values['accuracy']) <= 1.0 and float(bad) == 0.0
    assert int(step.numpy()) == 4 and int(optimizer.iterations.numpy()) == 4

    model.layers[-1].bias.assign([float('nan')] * 2)  # a non-finite loss (and gradients) at every step
    before = [v.numpy() for v in model.trainable_variables]
    _, bad = steps.repeat_step((images, labels), 3)
    assert float(bad) == 3.0  # the check ran at every step (under stop, bench's mode, nothing else uses it)
    assert int(step.numpy()) == 7
    if mode == 'skip':
        assert int(optimizer.iterations.numpy()) == 4  # no update applied
        for old, new in zip(before, model.trainable_variables):
            np.testing.assert_array_equal(old, new.numpy())
    else:
        assert int(optimizer.iterations.numpy()) == 7  # stop applies every update; the controller stops the run


def test_any_keras_model_and_a_constant_rate(tmp_path):
    def small_cnn(spec):
        inputs = keras.Input(spec[0].shape, dtype=spec[0].dtype)
        x = keras.layers.Rescaling(1 / 255)(inputs)
        x = keras.layers.Conv2D(4, 3, activation='relu')(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        model = keras.Model(inputs, keras.layers.Dense(2)(x))
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    result = trainer.train(small_cnn, tiny_dataset(32, seed=4), schedule=0.05, model_dir=str(tmp_path),
                           batch_size=8, train_steps=6, optimizer='sgd', interactive=False)
    rates = [rate for _, rate in scalars(os.path.join(str(tmp_path), 'train'), 'batch')['learning_rate']]
    assert rates == pytest.approx([0.05] * 6)
    assert result.evaluations == () and os.path.isdir(result.export_dir)


def test_a_built_keras_model_on_one_device(tmp_path):
    info = tfds_data.DatasetInfo('tiny', (8, 8, 1), 2, ('0', '1'))
    model = models.build('mlp', info)
    result = trainer.train(model, tiny_dataset(32, seed=5), schedule=0.01, model_dir=str(tmp_path), batch_size=8,
                           train_steps=4, interactive=False)
    assert result.model is model and result.step == 4


def test_python_api_checks_before_writing(tmp_path):
    model_dir = tmp_path / 'never'
    with pytest.raises(ConfigError, match='--warmup_steps'):
        trainer.train('mlp', tiny_dataset(32, seed=4), schedule='cosine', schedule_params={'warmup_steps': 50},
                      model_dir=str(model_dir), batch_size=8, epochs=2)
    with pytest.raises(data.DataError, match='--batch_size=64'):
        trainer.train('mlp', tiny_dataset(32, seed=4), model_dir=str(model_dir), batch_size=64)
    assert not model_dir.exists()


def test_epoch_lengths_convert_with_the_real_steps_per_epoch(tmp_path):
    def prepared(schedule, **params):
        config = Config(model_dir=str(tmp_path), dataset='custom', model='mlp', schedule=schedule,
                                       schedule_params=params, batch_size=BATCH, epochs=EPOCHS)
        return experiment.prepare(config, train_data=tiny_dataset(EXAMPLES + 5, seed=1)).schedule.get_config()

    # 69 examples at batch 8: 8 full batches per epoch (the remainder is dropped), 24 steps in 3 epochs.
    assert prepared('piecewise_constant', boundary_epochs=[1, 2.5], values=[0.1, 0.01, 0.001])['boundaries'] \
        == [8, 20]
    cosine = prepared('cosine', warmup_epochs=0.3, total_epochs=2)
    assert (cosine['warmup_steps'], cosine['total_steps']) == (2, 16)
    restarts = prepared('cosine_restarts', cycle_epochs=1)
    assert (restarts['cycle_steps'], restarts['warmup_steps']) == (8, 0)
    with pytest.raises(ConfigError, match='--cycle_epochs=-1'):
        prepared('cosine_restarts', cycle_epochs=-1)
    with pytest.raises(ConfigError, match='--total_epochs: total_steps must be'):
        prepared('cosine', total_epochs=0.01)
    with pytest.raises(ConfigError, match='--warmup_epochs and --warmup_steps were both given'):
        prepared('cosine', warmup_epochs=1, warmup_steps=3)


def test_augment_and_ema_settings_from_the_python_api():
    assert Config(model_dir='x', augment='flip,cutout').augment == ('flip', 'cutout')
    assert Config(model_dir='x', augment=['cutout']).as_dict()['augment'] == ['cutout']
    with pytest.raises(ConfigError, match="--augment=True must be a list of names from: flip, cutout"):
        Config(model_dir='x', augment=True)
    with pytest.raises(ConfigError, match="--augment='mixup' is not one of: flip, cutout"):
        Config(model_dir='x', augment=('mixup',))
    with pytest.raises(ConfigError, match='--cutout_size=0 must be a whole number >= 1'):
        Config(model_dir='x', augment=('cutout',), cutout_size=0)
    for bad in (0, 1, 1.5, float('nan'), '0.9'):
        with pytest.raises(ConfigError, match=r'--ema_momentum=.* must be a number in \(0, 1\)'):
            Config(model_dir='x', ema_momentum=bad)


def _ema_run(model_dir, **settings):
    return trainer.train('mlp', tiny_dataset(EXAMPLES, seed=1), eval_data=tiny_dataset(20, seed=2),
                         schedule='cosine', model_dir=str(model_dir), batch_size=BATCH, epochs=EPOCHS, seed=4,
                         deterministic=True, checkpoint_steps=1, keep_checkpoints=TOTAL, interactive=False,
                         **settings)


def _weights_at(result, model_dir, step, average):
    """The trained weights (or, with `average`, the optimizer's moving average) of checkpoint ckpt-<step>."""
    model = keras.models.clone_model(result.model)
    path = os.path.join(model_dir, f'ckpt-{step}')
    if average:
        optimizer = optimizers.build('adam', lambda: 1e-3, ema_momentum=0.5)  # a callable rate, as the trainer's
        optimizer.build(model.trainable_variables)
        tf.train.Checkpoint(model=model, optimizer=optimizer).read(path).expect_partial()
        optimizer.finalize_variable_values(model.trainable_variables)
    else:
        tf.train.Checkpoint(model=model).read(path).expect_partial()
    return model, [v.numpy().astype(np.float64) for v in model.trainable_variables]


def _loss_and_accuracy(model, dataset):
    """Mean cross-entropy and accuracy of `model` (logits) on `dataset`, in float64 numpy."""
    images, labels = (np.stack(a) for a in zip(*dataset.as_numpy_iterator()))
    logits = model(images.astype(np.float32)).numpy().astype(np.float64)
    log_probabilities = logits - logits.max(axis=1, keepdims=True)
    log_probabilities -= np.log(np.exp(log_probabilities).sum(axis=1, keepdims=True))
    return (float(-np.mean(log_probabilities[np.arange(len(labels)), labels])),
            float(np.mean(np.argmax(logits, axis=-1) == labels)))


def test_ema_evaluates_and_exports_the_moving_average_and_trains_as_without(tmp_path):
    momentum = 0.75
    averaged = _ema_run(tmp_path / 'ema', ema_momentum=momentum)
    plain = _ema_run(tmp_path / 'plain')
    # Keras's rule, in float64 from the trained weights after every step: the first step copies them.
    reference = None
    for step in range(1, TOTAL + 1):
        _, trained = _weights_at(averaged, tmp_path / 'ema', step, average=False)
        _, trained_plain = _weights_at(plain, tmp_path / 'plain', step, average=False)
        for a, b in zip(trained, trained_plain):  # the average never feeds back into training
            np.testing.assert_array_equal(a, b)
        reference = trained if reference is None else [momentum * r + (1 - momentum) * w
                                                       for r, w in zip(reference, trained)]
        model, stored = _weights_at(averaged, tmp_path / 'ema', step, average=True)
        for a, b in zip(stored, reference):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        if step % STEPS_PER_EPOCH == 0:  # each evaluation saw the average of its step
            evaluation = next(e for e in averaged.evaluations if e['step'] == step)
            loss, accuracy = _loss_and_accuracy(model, tiny_dataset(20, seed=2))
            assert evaluation['accuracy'] == pytest.approx(accuracy)
            assert evaluation['loss'] == pytest.approx(loss, rel=1e-5)
            trained_model, _ = _weights_at(averaged, tmp_path / 'ema', step, average=False)
            assert _loss_and_accuracy(trained_model, tiny_dataset(20, seed=2))[0] != pytest.approx(loss, rel=1e-5)
    for a, b in zip(averaged.model.trainable_variables, reference):  # the returned (and exported) model
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-5, atol=1e-6)
    serving = tf.saved_model.load(averaged.export_dir).signatures['serving_default']
    images = np.stack([image for image, _ in tiny_dataset(5, seed=3).as_numpy_iterator()])
    np.testing.assert_allclose(serving(images=tf.constant(images))['probabilities'].numpy(),
                               tf.nn.softmax(averaged.model(images.astype(np.float32))).numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(averaged.model.trainable_variables[0].numpy(), plain.model.trainable_variables[0].numpy())


def test_ema_run_resumed_from_a_checkpoint_ends_with_the_same_average(tmp_path):
    whole = _ema_run(tmp_path / 'whole', ema_momentum=0.75)
    # The same run as if stopped at step 15: a checkpoint is the model, the optimizer (with the average) and the
    # step.
    resumed_dir = tmp_path / 'resumed'
    resumed_dir.mkdir()
    for path in glob.glob(str(tmp_path / 'whole' / 'ckpt-15.*')):
        os.link(path, resumed_dir / os.path.basename(path))
    tf.compat.v1.train.update_checkpoint_state(str(resumed_dir), str(resumed_dir / 'ckpt-15'))
    resumed = _ema_run(resumed_dir, ema_momentum=0.75)
    assert [e['step'] for e in resumed.evaluations] == [2 * STEPS_PER_EPOCH, TOTAL]
    for a, b in zip(resumed.model.trainable_variables, whole.model.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)
    again = _ema_run(tmp_path / 'whole', ema_momentum=0.75)  # a finished run returns the average too
    assert again.already_finished
    for a, b in zip(again.model.trainable_variables, whole.model.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_run_started_before_a_setting_existed_resumes_with_its_default(tmp_path):
    first = _ema_run(tmp_path / 'run')
    path = tmp_path / 'run' / 'config.json'
    settings = json.loads(path.read_text())
    for newer in ('augment', 'cutout_size', 'ema_momentum'):
        del settings[newer]
    path.write_text(json.dumps(settings))
    again = _ema_run(tmp_path / 'run')
    assert again.already_finished and again.evaluations == first.evaluations
    path.write_text(json.dumps(settings))
    with pytest.raises(ConfigError, match=r"holds a run with augment=\[\], not \['cutout'\]"):
        _ema_run(tmp_path / 'run', augment=('cutout',))


def test_weights_made_non_finite_by_a_finite_step_are_not_saved(tmp_path):
    # An infinite rate at step 4: its loss and gradients are finite, the weights it leaves are not. The loop
    # call ends at step 5 (the run's end), and the save there is refused; the checkpoint of step 4 stays.
    rate = schedules.get('piecewise_constant', boundaries=[3], values=[0.01, 1e39])  # float32: inf after step 3
    with pytest.raises(faults.Stop, match='non-finite weights at step 5: not saved; the last good checkpoint is '
                                          + os.path.join(str(tmp_path), 'ckpt-4')):
        trainer.train('mlp', tiny_dataset(32, seed=4), schedule=rate, model_dir=str(tmp_path), batch_size=8,
                      train_steps=5, checkpoint_steps=2, optimizer='sgd', interactive=False)
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith('ckpt-4')
    assert not glob.glob(os.path.join(str(tmp_path), 'ckpt-5*'))
    assert not os.path.exists(os.path.join(str(tmp_path), 'export'))


def test_each_loop_call_is_in_the_event_file_when_it_returns(tmp_path, monkeypatch):
    # The train writer queues up to 1000 events; the loop flushes it as each call ends, so TensorBoard sees a
    # call's steps without waiting for a checkpoint.
    on_disk = []
    build = loop.Loop.__init__

    def observed_loop(self, *args, **kwargs):
        build(self, *args, **kwargs)
        train = self.train

        def observed_train(num_steps):
            logged = scalars(os.path.join(str(tmp_path), 'train'), 'batch').get('loss', [])
            on_disk.append([step for step, _ in logged])
            return train(num_steps)
        self.train = observed_train

    monkeypatch.setattr(loop.Loop, '__init__', observed_loop)
    trainer.train('mlp', tiny_dataset(64, seed=4), schedule=0.01, model_dir=str(tmp_path), batch_size=8,
                  train_steps=7, steps_per_loop=3, checkpoint_steps=0, interactive=False)
    assert on_disk == [[], [0, 1, 2], [0, 1, 2, 3, 4, 5]]


class _NaNGradientForBrightPixels(keras.layers.Layer):
    """y = w x, except that w's gradient is NaN for a batch with a pixel above 250: a finite loss, a NaN
    gradient (as `tf.where` over a branch with an infinite derivative gives)."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(), initializer='ones', name='w')

    def compute_output_shape(self, input_shape):
        return input_shape

    def call(self, x):
        @tf.custom_gradient
        def scale(x, w):
            def gradient(upstream):
                return upstream * w, tf.where(tf.reduce_any(x > 250.0), float('nan'), tf.reduce_sum(upstream * x))
            return x * w, gradient
        return scale(x, tf.convert_to_tensor(self.w))


def _bright_examples():
    """32 examples, one of them with a pixel above 250, and the first step whose batch holds it."""
    images = np.random.default_rng(3).integers(0, 200, size=(32, 8, 8, 1), dtype=np.uint8)
    images[5, 2, 2, 0] = 255
    examples = tf.data.Dataset.from_tensor_slices((images, np.arange(32) % 2))
    batches = data.TrainBatches(examples, 32, 8, seed=0).dataset()
    bright = next(step for step, (batch, _) in enumerate(batches.take(4)) if np.max(batch) > 250)
    return examples, bright


def _nan_gradient_model(spec):
    inputs = keras.Input(spec[0].shape)
    x = _NaNGradientForBrightPixels(name='nan_gradient')(inputs)
    return models.compile_classifier(keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x))))


def test_stop_at_a_nonfinite_gradient_under_a_finite_loss(tmp_path):
    examples, bright = _bright_examples()
    # One step per loop call, so the call that ends with non-finite weights is the bright step alone.
    with pytest.raises(faults.Stop) as stopped:
        trainer.train(_nan_gradient_model, examples, schedule=0.01, model_dir=str(tmp_path), batch_size=8,
                      train_steps=8, steps_per_loop=1, checkpoint_steps=1, interactive=False)
    latest = os.path.join(str(tmp_path), f'ckpt-{bright}') if bright else 'none'
    assert str(stopped.value) == (
        f'non-finite weights at step {bright + 1}: not saved; the last good checkpoint is {latest}; a step of '
        f'{bright}..{bright} with a finite loss made them so (a non-finite gradient, or an update that '
        'overflowed): lower the learning rate (in a new --model_dir)')
    losses = scalars(os.path.join(str(tmp_path), 'train'), 'batch')['loss']
    assert [step for step, _ in losses] == list(range(bright + 1)) and np.all(np.isfinite([v for _, v in losses]))
    assert not glob.glob(os.path.join(str(tmp_path), f'ckpt-{bright + 1}*'))


def test_skip_finds_a_nonfinite_gradient_under_a_finite_loss_at_its_step(tmp_path):
    examples, bright = _bright_examples()
    result = trainer.train(_nan_gradient_model, examples, schedule=0.01, model_dir=str(tmp_path), batch_size=8,
                           train_steps=8, steps_per_loop=8, on_nonfinite='skip', interactive=False)
    assert result.step == 8
    checkpoint = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(tmp_path)))
    assert all(np.all(np.isfinite(checkpoint.get_tensor(name)))
               for name, dtype in checkpoint.get_variable_to_dtype_map().items() if dtype.is_floating)
    # The bright example is in one batch per epoch: two of the eight steps were skipped.
    iterations = checkpoint.get_tensor('optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE')
    assert int(iterations) == 8 - 2


def test_a_batch_that_does_not_split_over_the_replicas_is_refused():
    batches = data.TrainBatches(tiny_dataset(EXAMPLES, seed=1), EXAMPLES, BATCH, seed=0)
    three_replicas = types.SimpleNamespace(num_replicas_in_sync=3)  # refused before anything else is touched
    with pytest.raises(ValueError, match=f'batch size {BATCH} does not split evenly over 3 replicas'):
        loop.Loop(None, None, three_replicas, None, None, batches)


def test_calls_of_any_length_take_the_batches_in_order():
    # A call takes exactly its steps' batches: split into calls or not, a run is the same.
    info = tfds_data.DatasetInfo('tiny', (8, 8, 1), 2, ('0', '1'))
    batches = data.TrainBatches(tiny_dataset(EXAMPLES, seed=1), EXAMPLES, BATCH, seed=0)

    def run(calls):
        keras.utils.set_random_seed(7)
        strategy = tf.distribute.get_strategy()
        model = models.build('mlp', info)
        step = tf.Variable(0, dtype=tf.int64)
        optimizer = optimizers.build('sgd', lambda: tf.constant(0.01))
        _ready(model, optimizer, tiny_dataset(EXAMPLES, seed=1))
        steps = loop.Loop(model, optimizer, strategy, step, tf.summary.create_noop_writer(), batches)
        for n in calls:
            steps.train(tf.constant(n, tf.int64))
        return [v.numpy() for v in model.trainable_variables]

    whole = run([9])
    for split in ([1, 5, 3], [4, 1, 1, 3]):
        for ours, reference in zip(run(split), whole):
            np.testing.assert_array_equal(ours, reference)


def test_a_resume_at_an_epoch_end_shows_each_epoch_mean_once(tmp_path):
    """As if killed right after the checkpoint of an epoch's end: the rerun's restart mark hides every value at
    steps >= 16 of the killed process, the epoch-2 means among them, and logs them again from the checkpoint."""
    def run(model_dir):
        return trainer.train('mlp', tiny_dataset(EXAMPLES, seed=1), eval_data=tiny_dataset(20, seed=2),
                             model_dir=str(model_dir), batch_size=BATCH, epochs=EPOCHS, steps_per_loop=3,
                             checkpoint_steps=5, keep_checkpoints=10, deterministic=True, interactive=False)

    run(tmp_path / 'whole')
    resumed = tmp_path / 'resumed'
    (resumed / 'train').mkdir(parents=True)
    for path in glob.glob(str(tmp_path / 'whole' / 'ckpt-16.*')) + [str(tmp_path / 'whole' / 'config.json')]:
        os.link(path, resumed / os.path.basename(path))
    for path in glob.glob(str(tmp_path / 'whole' / 'train' / 'events.*')):
        os.link(path, resumed / 'train' / os.path.basename(path))
    tf.compat.v1.train.update_checkpoint_state(str(resumed), str(resumed / 'ckpt-16'))
    run(resumed)

    def shown(model_dir):  # TensorBoard's event multiplexer (--load_fast=false) on the train run
        view = accumulator.EventAccumulator(str(model_dir / 'train'), size_guidance={'tensors': 0}).Reload()
        return {tag: [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in view.Tensors(tag)]
                for tag in ('epoch/loss', 'epoch/accuracy', 'batch/loss')}
    expected, got = shown(tmp_path / 'whole'), shown(resumed)
    assert [s for s, _ in expected['epoch/loss']] == [STEPS_PER_EPOCH * (e + 1) for e in range(EPOCHS)]
    assert got == expected
