"""Distribution: MirroredStrategy on 2 CPU devices and a 2-worker cluster match one device; preemption.

Every run is `python -m trainer.main` in a subprocess: devices and collective ops are configured when
TensorFlow starts, so each strategy needs a fresh process.
"""
import glob
import json
import os
import re
import signal
import time

import numpy as np
import pytest

from test_distribute_support import common, finish, relative_differences, start_cluster
from test_trainer_support import checkpoint_values, finished, run_main, scalars, scratch

# 32 batches per epoch: evaluations at 32 and 40, so training goes on after an evaluation swapped the average in
# and out; checkpoints at 20, 32 and 40.
STEPS = 40
# With a moving average of the weights: evaluated and exported instead of the weights, kept in the optimizer.
MATCHING = ('--eval_split=test[:100]', f'--train_steps={STEPS}', '--steps_per_loop=7', '--checkpoint_steps=20',
            '--ema_momentum=0.9')
TOLERANCE = 1e-5


@pytest.fixture(scope='module')
def base(tmp_path_factory):
    return scratch(tmp_path_factory, 'distribute')


@pytest.fixture(scope='module')
def one_device(base):
    """The reference: one replica on one device, same global batch and seed as the distributed runs."""
    model_dir = base / 'one_device'
    done = finished(*common(base / 'data', model_dir, *MATCHING), '--strategy=one_device')
    assert 'OneDeviceStrategy: 1 replica(s), per-replica batch 16' in done.stdout
    return model_dir


def assert_same_run(model_dir, reference):
    """Same weights and optimizer state (relative difference <= TOLERANCE), same logged series and evaluations."""
    differences = relative_differences(checkpoint_values(reference), checkpoint_values(model_dir))
    assert max(differences.values()) <= TOLERANCE, differences
    logged, expected = scalars(model_dir / 'train', 'batch'), scalars(reference / 'train', 'batch')
    for tag in ('learning_rate', 'loss', 'accuracy'):
        assert [s for s, _ in logged[tag]] == list(range(STEPS)), tag
    assert [v for _, v in logged['learning_rate']] == [v for _, v in expected['learning_rate']]
    # Accuracy is a count of correct predictions over the global batch: exactly equal, not merely close.
    assert [v for _, v in logged['accuracy']] == [v for _, v in expected['accuracy']]
    np.testing.assert_allclose([v for _, v in logged['loss']], [v for _, v in expected['loss']], rtol=TOLERANCE)
    evaluations = json.loads((model_dir / 'evaluations.json').read_text())
    reference_evaluations = json.loads((reference / 'evaluations.json').read_text())
    assert [e['step'] for e in evaluations] == [e['step'] for e in reference_evaluations] == [32, STEPS]
    for got, want in zip(evaluations, reference_evaluations):
        assert got['accuracy'] == want['accuracy']
        assert got['loss'] == pytest.approx(want['loss'], rel=TOLERANCE)


def test_mirrored_on_two_cpu_devices_matches_one_device(base, one_device):
    model_dir = base / 'mirrored'
    done = finished(*common(base / 'data', model_dir, *MATCHING), '--strategy=mirrored', '--cpu_devices=2')
    # Two replicas, each on half of the global batch.
    assert 'MirroredStrategy: 2 replica(s), per-replica batch 8' in done.stdout
    assert_same_run(model_dir, one_device)


@pytest.mark.parametrize('flags, message', [
    (['--strategy=mirrored', '--cpu_devices=2', '--batch_size=15'],
     'error: --batch_size=15 (the global batch) does not split evenly over 2 replicas; use a multiple of 2, '
     'e.g. 14 or 16'),
    (['--strategy=tpu'], 'error: --strategy=tpu: no TPU found'),
    (['--strategy=multi_worker', '--cpu_devices=2'], 'error: --cpu_devices=2 only applies to --strategy=mirrored'),
])
def test_bad_distribution_settings_are_one_line_flag_errors(base, flags, message):
    model_dir = base / 'never'
    done = run_main(*common(base / 'data', model_dir), *flags)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.startswith('error:')]
    assert len(lines) == 1 and lines[0].startswith(message), done.stderr[-3000:]
    assert 'Traceback' not in done.stderr
    assert not model_dir.exists()


def test_a_bad_tf_config_is_a_one_line_error(base):
    model_dir = base / 'never'
    done = run_main(*common(base / 'data', model_dir), '--strategy=multi_worker',
                    env={'TF_CONFIG': '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", '
                                      '"index": 1}}'})
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].startswith("error: TF_CONFIG task 'worker' #1 is not in its cluster "
                                                   "(worker: 1)"), done.stderr[-3000:]
    assert not model_dir.exists()


def _files(folder):
    return sorted(os.path.relpath(p, folder) for p in glob.glob(os.path.join(folder, '**'), recursive=True))


def test_two_workers_match_one_worker_and_only_the_chief_writes(base, one_device):
    model_dir, tmp = base / 'cluster', base / 'cluster_tmp'
    tmp.mkdir()
    results = finish(start_cluster(common(base / 'data', model_dir, *MATCHING), tmp))
    for code, out, err in results:
        assert code == 0, err[-3000:]
    chief, other = results[0][1], results[1][1]
    assert 'MultiWorkerMirroredStrategy: 2 replica(s), per-replica batch 8' in chief
    assert '(this is worker 0: the chief)' in chief and '(this is worker 1: not the chief' in other
    # The chief's files only: one event file per TensorBoard run (each writer names its file after its
    # process), checkpoints, export; the layout of the one-device run's folder.
    names = _files(model_dir)
    assert [n for n in names if 'tfevents' not in n] == [n for n in _files(one_device) if 'tfevents' not in n]
    events = [n for n in names if 'tfevents' in n]
    assert len(events) == 3 and {os.path.dirname(n) for n in events} == {'hparams', 'train', 'eval'}
    # The other worker's temporary folder is gone.
    assert not glob.glob(str(tmp / 'stepwise-*'))
    assert_same_run(model_dir, one_device)


def _wait_for(path, processes, seconds):
    deadline = time.monotonic() + seconds
    while not path.exists() and all(p.poll() is None for p in processes) and time.monotonic() < deadline:
        time.sleep(0.05)
    return path.exists()


def test_sigterm_to_one_worker_checkpoints_on_all_and_the_rerun_completes(base):
    total = 300
    args = common(base / 'data', base / 'preempted', '--eval_split=', f'--train_steps={total}',
                  '--steps_per_loop=5', '--checkpoint_steps=50')
    model_dir, tmp = base / 'preempted', base / 'preempted_tmp'
    tmp.mkdir()
    workers = start_cluster(args, tmp)
    try:
        started = _wait_for(model_dir / 'checkpoint', workers, 120)
        if started:
            workers[1].send_signal(signal.SIGTERM)
    finally:
        results = finish(workers)
    assert started, [err[-2000:] for _, _, err in results]
    saved = []
    for code, out, err in results:
        assert code == 42, (out[-2000:], err[-2000:])  # distribute.RESTART_CODE
        saved.append(int(re.search(r'preempted: every worker saved a checkpoint at step (\d+)', out).group(1)))
    step = saved[0]
    # The signal came after the first checkpoint (the end of epoch 1, step 32) and long before the end.
    assert saved == [step, step] and 32 < step < total
    assert int(checkpoint_values(model_dir)['step/.ATTRIBUTES/VARIABLE_VALUE']) == step
    assert not glob.glob(str(tmp / 'stepwise-*'))

    results = finish(start_cluster(args, tmp))
    for code, out, err in results:
        assert code == 0, err[-3000:]
        assert f' at step {step}/{total}' in out
    assert f'resuming {model_dir} at step {step}/{total}' in results[0][1]
    assert int(checkpoint_values(model_dir)['step/.ATTRIBUTES/VARIABLE_VALUE']) == total
    # Summaries were flushed before the preemption checkpoint: every step logged once, across both runs.
    assert sorted(s for s, _ in scalars(model_dir / 'train', 'batch')['learning_rate']) == list(range(total))


def test_create_in_process_checks_before_touching_devices(monkeypatch):
    import tensorflow as tf
    from trainer import distribute
    from trainer.config import ConfigError
    tf.config.list_logical_devices()  # starts TensorFlow's runtime, as other tests in this process may have
    # TensorFlow already runs in this process: a setting that keeps its devices is accepted...
    assert distribute.create() is distribute.create('auto', cpu_devices=None)
    assert distribute.create('one_device').num_replicas_in_sync == 1
    # ...a new device split is refused with one line, not a RuntimeError.
    with pytest.raises(ConfigError, match=r'^--cpu_devices=3 / --num_gpus=None: TensorFlow has already started'):
        distribute.create('mirrored', cpu_devices=3)
    for name, gpus, cpus, message in [('ring', None, None, "--strategy='ring' is not one of: auto, one_device"),
                                      ('mirrored', None, 0, '--cpu_devices=0 must be a whole number >= 1'),
                                      ('mirrored', -1, None, '--num_gpus=-1 must be a whole number >= 0'),
                                      ('mirrored', 1, None, '--num_gpus=1 but 0 GPU(s) are visible')]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            distribute.create(name, gpus, cpus)
    for tf_config, message in [('{"cluster": ', 'TF_CONFIG is not JSON'),
                               ('{"task": {"type": "worker", "index": 0}}', 'TF_CONFIG needs "cluster" and "task"'),
                               ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "chief", "index": 0}}',
                                "TF_CONFIG task 'chief' #0 is not in its cluster (worker: 2)")]:
        monkeypatch.setenv('TF_CONFIG', tf_config)
        with pytest.raises(ConfigError, match=re.escape(message)):
            distribute.create('multi_worker')


def test_check_batch_names_the_flag_and_good_values():
    import tensorflow as tf
    from trainer import distribute
    from trainer.config import ConfigError

    class FourReplicas:
        num_replicas_in_sync = 4

    distribute.check_batch(FourReplicas(), 32)
    with pytest.raises(ConfigError, match=re.escape('--batch_size=30 (the global batch) does not split evenly '
                                                    'over 4 replicas; use a multiple of 4, e.g. 28 or 32')):
        distribute.check_batch(FourReplicas(), 30)
    with pytest.raises(ConfigError, match=re.escape('use a multiple of 4, e.g. 4')):
        distribute.check_batch(FourReplicas(), 3)
    distribute.check_batch(tf.distribute.get_strategy(), 7)
