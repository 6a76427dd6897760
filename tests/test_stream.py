"""Issue 15: the streamed input path (trainer.stream), its choice by the memory budget, and exact resumes."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import stream_scenario
from test_distribute_support import WORKER_TIMEOUT, finish, free_ports, relative_differences
from test_faults import assert_same_weights, freeze_at, latest_step
from test_trainer_support import REPO, checkpoint_values
from trainer import config as config_lib
from trainer import data, experiment, stream


def arrays(count=100, width=3):
    x = np.arange(count * width, dtype=np.float32).reshape(count, width)
    return x, np.arange(count, dtype=np.int64)


def labels_of(batches, start, count):
    return [b[1].numpy() for _, b in batches.dataset(start).take(count)]


@pytest.mark.parametrize('per_example', [False, True])
def test_streamed_by_index_equals_the_in_memory_batches_for_any_shards(per_example):
    x, y = arrays()
    memory = data.TrainBatches(tf.data.Dataset.from_tensor_slices((x, y)), 100, 8, seed=5)
    source = stream.arrays(x, y, 'arrays')
    if per_example:
        source = stream.RandomAccess(100, source.element_spec, lambda i: (tf.gather(x, i), tf.gather(y, i)), 20,
                                     'arrays', per_example=True)
    for shards in (1, 2, 4):
        for owned in ([*range(shards)], [shards - 1]):
            streamed = stream.StreamBatches(source, 8, 5, memory.steps_per_epoch, shards=shards, owned=owned)
            for step, (read_step, batch) in zip(range(7, 40), streamed.dataset(7)):
                assert int(read_step) == step
                local = 8 // shards
                expected = np.concatenate([memory(tf.constant(step))[1].numpy()[k * local:(k + 1) * local]
                                           for k in owned])
                np.testing.assert_array_equal(batch[1].numpy(), expected)
                np.testing.assert_array_equal(batch[0].numpy(), x[expected])


def sequential(x, y, shards_read=None):
    examples = tf.data.Dataset.from_tensor_slices((x, y))

    def shard(index, count):
        if shards_read is not None:
            shards_read.append(index)
        return examples.shard(count, index)
    return stream.Sequential(examples.element_spec, shard, lambda count: None, False, 20, 'test')


def test_sequential_stream_resumed_at_any_step_reads_what_an_unbroken_one_reads():
    x, y = arrays()
    batches = stream.StreamBatches(sequential(x, y), 8, 5, steps_per_epoch=6, shards=2, shuffle_buffer=20)
    whole = labels_of(batches, 0, 30)
    for start in (1, 5, 6, 13, 29):
        np.testing.assert_array_equal(np.stack(labels_of(batches, start, 30 - start)), np.stack(whole[start:]))
        assert batches.skipped_examples(start) == start % 6 * 8
    for epoch in range(5):
        assert len(set(np.concatenate(whole[epoch * 6:(epoch + 1) * 6]))) == 48
    # Shard k holds the examples k, k + 2, ...; each step takes 4 of each shard, through a seeded buffer.
    assert all(sum(v % 2 == k for v in b) == 4 for b in whole for k in (0, 1))
    assert not np.array_equal(np.concatenate(whole[:6]), np.concatenate(whole[6:12]))  # a new order per epoch
    other_seed = stream.StreamBatches(sequential(x, y), 8, 6, steps_per_epoch=6, shards=2, shuffle_buffer=20)
    assert not np.array_equal(np.stack(labels_of(other_seed, 0, 6)), np.stack(whole[:6]))


def test_a_worker_reads_only_the_shards_it_owns():
    x, y = arrays()
    read = []
    batches = stream.StreamBatches(sequential(x, y, read), 8, 5, steps_per_epoch=6, shards=4, owned=[2, 3])
    got = labels_of(batches, 0, 3)
    assert sorted(set(read)) == [2, 3]
    assert all(sorted(v % 4 for v in b) == [2, 2, 3, 3] for b in got)
    assert list(stream.owned_shards(4, 1, 2)) == [2, 3] and list(stream.owned_shards(4, 0, 4)) == [0]


def test_a_shard_shorter_than_its_epoch_stops_instead_of_shifting_batches():
    x, y = arrays()
    batches = stream.StreamBatches(sequential(x, y), 8, 5, steps_per_epoch=13, shards=2)
    with pytest.raises(tf.errors.FailedPreconditionError, match='expected to contain 52 elements'):
        labels_of(batches, 0, 20)


def test_infinite_stream_is_read_once_from_its_start():
    x, y = arrays()
    examples = tf.data.Dataset.from_tensor_slices((x, y)).repeat()
    source = stream.Sequential(examples.element_spec, lambda k, n: examples.shard(n, k), lambda n: None, True, 20,
                               'repeat')
    batches = stream.StreamBatches(source, 10, 0, steps_per_epoch=4, shards=1)
    whole = np.stack(labels_of(batches, 0, 25))
    np.testing.assert_array_equal(whole.ravel(), np.arange(250) % 100)
    np.testing.assert_array_equal(np.stack(labels_of(batches, 17, 8)), whole[17:])


def test_the_loop_reads_the_batch_of_its_step_or_fails():
    x, y = arrays()
    batches = stream.StreamBatches(stream.arrays(x, y, 'arrays'), 8, 5, 12)
    batches.start(3)
    read = tf.function(lambda step: batches(step))
    expected = data.TrainBatches(tf.data.Dataset.from_tensor_slices((x, y)), 100, 8, seed=5)(tf.constant(3))
    np.testing.assert_array_equal(read(tf.constant(3, tf.int64))[1].numpy(), expected[1].numpy())
    with pytest.raises(tf.errors.InvalidArgumentError, match='not at the loop'):
        read(tf.constant(9, tf.int64))


# --- the choice of path, and the settings of a stream ---------------------------------------------------

def prepared(dataset, **settings):
    config = config_lib.Config(model_dir='/nonexistent', **settings)
    return experiment.prepare(config, train_data=dataset, model_given=True)


def test_examples_that_fit_the_budget_are_held_in_memory_and_the_others_streamed():
    x = np.zeros((4096, 64), np.float32)  # 1 MB
    examples = tf.data.Dataset.from_tensor_slices((x, np.zeros(4096, np.int64)))
    held = prepared(examples, memory_budget_mb=2)
    assert held.source is None and held.config.input_order == 'index'
    assert held.input_line.startswith('input: in memory, 4096 examples (1.0 MB, memory budget 2 MB')
    streamed = prepared(examples, memory_budget_mb=1, shuffle_buffer=100)
    assert isinstance(streamed.source, stream.Sequential) and streamed.config.input_order == 'sequential'
    assert streamed.steps_per_epoch == 128 and streamed.config.input_shards == 1
    assert streamed.input_line.endswith('(1 MB, over the 1 MB memory budget)')
    forced = prepared(examples, input='memory', memory_budget_mb=1)
    assert forced.source is None


def test_stream_sizes_come_from_the_data_a_count_or_a_setting():
    x = np.zeros((100, 2), np.float32)
    known = tf.data.Dataset.from_tensor_slices((x, np.zeros(100, np.int64)))
    unknown = known.filter(lambda a, b: True)
    streamed = prepared(known, input='stream', batch_size=8)
    assert streamed.steps_per_epoch == 12 and streamed.config.stream_sizes == (100,)
    counted = prepared(unknown, input='stream', batch_size=8)
    assert counted.steps_per_epoch == 12 and counted.config.stream_sizes == (100,)
    assert '(--input=stream); its size counted in one pass: 100 examples (' in counted.input_line
    halves = prepared(tf.data.Dataset.from_tensor_slices((x[:99], np.zeros(99, np.int64))), input='stream',
                      batch_size=8, input_shards=2)  # shards of 50 and 49 examples: 12 steps of 4 each
    assert halves.steps_per_epoch == 12 and halves.config.stream_sizes == (50, 49)
    assert halves.input_line.endswith('; input shards of unequal size (50 + 49): each epoch reads 12 steps x 4 '
                                      'examples of each, so 1 examples of the larger shards are not read per epoch')
    with pytest.raises(config_lib.ConfigError, match='--steps_per_epoch applies to a stream of unknown size'):
        prepared(known, input='stream', steps_per_epoch=5)
    assert prepared(unknown, input='stream', batch_size=8, steps_per_epoch=5).steps_per_epoch == 5
    with pytest.raises(config_lib.ConfigError, match='infinite; give --train_steps'):
        prepared(known.repeat(), input='stream')
    endless = prepared(known.repeat(), input='stream', train_steps=30, steps_per_epoch=10)
    assert endless.source.infinite and (endless.steps_per_epoch, endless.total_steps) == (10, 30)
    with pytest.raises(config_lib.ConfigError, match='--steps_per_epoch applies to a stream'):
        prepared(known, steps_per_epoch=5)
    with pytest.raises(data.DataError, match='is infinite'):
        prepared(known.repeat(), input='memory')


def test_bad_stream_settings_are_one_line_each():
    x = np.zeros((64, 1000), np.float32)  # 4000-byte examples
    examples = tf.data.Dataset.from_tensor_slices((x, np.zeros(64, np.int64)))
    cases = [({'input': 'disk'}, "--input='disk' is not one of: auto, memory, stream"),
             ({'shuffle_buffer': -1}, '--shuffle_buffer=-1 must be a whole number >= 0'),
             ({'input_shards': 0}, '--input_shards=0 must be a whole number >= 1'),
             ({'input': 'stream', 'input_shards': 3, 'batch_size': 32}, 'does not split evenly over 3 input shards'),
             ({'input': 'stream', 'memory_budget_mb': 1, 'shuffle_buffer': 1000},
              '--shuffle_buffer=1000 examples of 4008 bytes'),
             ({'validation_split': 0.1}, 'go with a folder or .npz dataset; with train_data, pass eval_data')]
    for settings, message in cases:
        with pytest.raises(config_lib.ConfigError) as excinfo:
            prepared(examples, **settings)
        assert message in str(excinfo.value) and '\n' not in str(excinfo.value)


# --- TFRecord files streamed by the Python API (tests/stream_scenario.py, a process per run) --------------

SCENARIO = os.path.join(REPO, 'tests', 'stream_scenario.py')
FEATURES = 4096  # 16 KB examples


# Linux keeps a process's peak RSS across exec, so a child of pytest starts its ru_maxrss at pytest's RSS (1 GB
# late in the suite): a run whose peak is measured is started by a small Python instead.
_LAUNCHER = [sys.executable, '-c', 'import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))']


def scenario(model_dir, data_dir, *settings, strategy='auto', cpu_devices=None, wait=True, env=None,
             measured=False):
    command = [*(_LAUNCHER if measured else []), sys.executable, SCENARIO, str(model_dir), str(data_dir),
               f'--strategy={strategy}', *([f'--cpu_devices={cpu_devices}'] if cpu_devices else []),
               *(f'--setting={name}={json.dumps(value)}' for name, value in settings)]
    process = subprocess.Popen(command, cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', **(env or {})),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait:
        return process
    out, err = process.communicate(timeout=WORKER_TIMEOUT)
    assert process.returncode == 0 and 'done' in out, err[-3000:]
    return out


def peak_rss_mb(out):
    return int(re.search(r'peak_rss_kb (\d+)', out).group(1)) / 1024


@pytest.fixture(scope='module')
def records(tmp_path_factory):
    base = tmp_path_factory.mktemp('records')
    stream_scenario.write(str(base / 'small'), files=4, per_file=64, features=FEATURES)      # 4 MB
    stream_scenario.write(str(base / 'large'), files=8, per_file=640, features=FEATURES)     # 80 MB
    return base


# The large set under a 16 MB budget: streamed (auto), 160 steps an epoch.
RESUME = [('memory_budget_mb', 16), ('batch_size', 32), ('epochs', 1.5), ('shuffle_buffer', 256),
          ('steps_per_loop', 5), ('checkpoint_steps', 35), ('deterministic', True), ('seed', 3)]


def test_a_set_four_times_the_budget_trains_in_bounded_memory(records, tmp_path):
    budget = 16
    # One dataset object (not a function of the input context, always streamed): auto chooses by its size.
    common = [('memory_budget_mb', budget), ('batch_size', 32), ('epochs', 1), ('shuffle_buffer', 256),
              ('as_dataset', True)]
    baseline = peak_rss_mb(scenario(tmp_path / 'small', records / 'small', *common, ('input', 'stream'),
                                    measured=True))
    out = scenario(tmp_path / 'large', records / 'large', *common, measured=True)
    assert '(80 MB, over the 16 MB memory budget)' in out and 'trained steps 0..160' in out
    large = peak_rss_mb(out)
    assert large < baseline + budget, (baseline, large)
    # The measure sees the examples: held in memory, the same set takes its 80 MB more.
    held = peak_rss_mb(scenario(tmp_path / 'held', records / 'large', *common, ('input', 'memory'), measured=True))
    assert held > baseline + 64, (baseline, held)


def killed_and_resumed(model_dir, data_dir, **strategy):
    process = scenario(model_dir, data_dir, *RESUME, wait=False, **strategy)
    freeze_at(process, lambda: latest_step(model_dir) % 160 > 0, 'a checkpoint within an epoch')
    step = latest_step(model_dir)
    process.send_signal(signal.SIGKILL)
    process.send_signal(signal.SIGCONT)
    process.communicate(timeout=WORKER_TIMEOUT)
    out = scenario(model_dir, data_dir, *RESUME, **strategy)
    assert f'resuming {model_dir} at step {step}/240' in out
    assert f'its first {step % 160 * 32} examples are read again and dropped' in out
    return out


@pytest.mark.parametrize('strategy', [{}, {'strategy': 'mirrored', 'cpu_devices': 2}], ids=['one_device', 'mirrored'])
def test_stream_killed_9_resumes_exactly(records, tmp_path, strategy):
    """The set four times the budget, killed within its first or second epoch (a checkpoint every 35 steps)."""
    out = scenario(tmp_path / 'whole', records / 'large', *RESUME, **strategy)
    assert 'input: streamed from train_data (a function of the input context' in out
    killed_and_resumed(tmp_path / 'killed', records / 'large', **strategy)
    assert_same_weights(tmp_path / 'killed', tmp_path / 'whole')
    if strategy:
        scenario(tmp_path / 'one', records / 'large', *RESUME)
        differences = relative_differences(checkpoint_values(tmp_path / 'one'), checkpoint_values(tmp_path / 'whole'))
        assert max(differences.values()) < 1e-5, differences


def test_two_workers_each_holding_only_its_shard_train_as_one_worker(records, tmp_path):
    """Worker w has only the files i % 2 == w: a read of any other file would fail the run."""
    for worker in (0, 1):
        folder = tmp_path / f'data{worker}'
        folder.mkdir()
        shutil.copy(records / 'small' / 'manifest.json', folder)
        for index in range(worker, 4, 2):
            shutil.copy(records / 'small' / f'part-{index}.tfrecord', folder)
    settings = [('batch_size', 16), ('epochs', 2), ('shuffle_buffer', 64), ('deterministic', True), ('seed', 3)]
    one = scenario(tmp_path / 'one', records / 'small', *settings, ('input_shards', 2))
    assert 'this worker reads 0..1' in one
    addresses = [f'127.0.0.1:{port}' for port in free_ports(2)]
    workers = []
    for index in (0, 1):
        tf_config = {'cluster': {'worker': addresses}, 'task': {'type': 'worker', 'index': index}}
        workers.append(scenario(tmp_path / 'cluster', tmp_path / f'data{index}', *settings, strategy='multi_worker',
                                wait=False, env={'TF_CONFIG': json.dumps(tf_config), 'TMPDIR': str(tmp_path)}))
    for index, (status, out, err) in enumerate(finish(workers)):
        assert status == 0 and 'done' in out, err[-3000:]
        assert f'2 input shards, this worker reads {index}..{index}' in out
    differences = relative_differences(checkpoint_values(tmp_path / 'one'), checkpoint_values(tmp_path / 'cluster'))
    assert max(differences.values()) < 1e-5, differences


def test_a_stream_shorter_than_its_steps_per_epoch_stops_with_one_line(tmp_path):
    import keras
    import trainer
    from trainer import faults
    x = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
    unknown_size = tf.data.Dataset.from_tensor_slices((x, x.sum(1))).filter(lambda a, b: True)

    def model(spec):
        net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        net.compile(loss='mse')
        return net
    with pytest.raises(faults.Stop) as excinfo:
        trainer.train(model, unknown_size, model_dir=str(tmp_path / 'short'), batch_size=10, steps_per_epoch=20,
                      epochs=1, steps_per_loop=4, schedule=1e-2, interactive=False)
    message = str(excinfo.value)
    assert message.startswith('the input stream failed in steps 8..11: FailedPreconditionError: ') and \
        'expected to contain 200 elements but contained only 100' in message and '\n' not in message
    assert '(--steps_per_epoch=20 reads 20 x 10 examples of each input shard per epoch)' in message
    assert message.endswith('the last checkpoint is none')  # none yet: the first is at the epoch's end


def test_a_resume_on_a_stream_of_another_size_is_refused(tmp_path):
    """A stream read in order is not hashed; its examples per shard stand for it in config.json."""
    import keras
    import trainer
    x = np.random.default_rng(0).normal(size=(120, 3)).astype(np.float32)

    def run(count):
        examples = tf.data.Dataset.from_tensor_slices((x[:count], x[:count].sum(1))).filter(lambda a, b: True)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(loss='mse')
        return trainer.train(model, examples, model_dir=str(tmp_path / 'run'), batch_size=10, epochs=1,
                             schedule=1e-2, interactive=False)
    run(100)
    settings = json.loads((tmp_path / 'run' / 'config.json').read_text())
    assert settings['stream_sizes'] == [100] and settings['input_order'] == 'sequential'
    assert run(100).already_finished
    with pytest.raises(config_lib.ConfigError, match=r'holds a run with stream_sizes=\[100\].*rerun with the same'):
        run(120)
