"""`python -m trainer.main` in a subprocess: resume after a kill, finished runs, flagfiles and bad input."""
import json
import os
import re
import signal
import time

import numpy as np
import pytest
from absl import flags

from test_trainer_support import checkpoint_values, finished, main_in_process, run_main, scalars, scratch
from trainer import flags as trainer_flags

# Real Fashion-MNIST (Debian's files; an empty --data_dir keeps any prepared copy out), a small slice, the mlp.
STEPS_PER_EPOCH = 6000 // 8
TOTAL = 4 * STEPS_PER_EPOCH


def common(data_dir, model_dir, warmup=True):
    return [f'--data_dir={data_dir}', f'--model_dir={model_dir}', '--train_split=train[:10%]',
            '--eval_split=test[:2%]', '--model=mlp', '--batch_size=8', '--epochs=4',
            '--schedule=cosine_restarts', '--cycle_steps=700', '--cycle_multiplier=1.5', '--steps_per_loop=10',
            '--checkpoint_steps=100', '--deterministic', '--seed=7'] + (['--warmup_steps=50'] if warmup else [])


@pytest.fixture(scope='module')
def dirs(tmp_path_factory):
    return scratch(tmp_path_factory, 'main')


@pytest.fixture(scope='module')
def uninterrupted(dirs):
    model_dir = str(dirs / 'whole')
    finished(*common(dirs / 'data', model_dir))
    return model_dir


@pytest.fixture(scope='module')
def resumed(dirs):
    """The same command killed (SIGKILL) after its first checkpoint, then run again to the end."""
    model_dir = dirs / 'killed'
    process = run_main(*common(dirs / 'data', model_dir), wait=False)
    state = model_dir / 'checkpoint'
    deadline = time.monotonic() + 240
    while not state.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL, 'the run ended before it could be interrupted'
    again = finished(*common(dirs / 'data', model_dir))
    step = int(re.search(r'resuming .* at step (\d+)/', again.stdout).group(1))
    assert 0 < step < TOTAL
    return str(model_dir), step


def test_resumed_run_ends_with_the_same_weights(uninterrupted, resumed):
    whole, killed = checkpoint_values(uninterrupted), checkpoint_values(resumed[0])
    assert sorted(whole) == sorted(killed)
    for name in whole:
        np.testing.assert_array_equal(killed[name], whole[name], err_msg=name)


def test_resumed_run_logs_the_same_curve(uninterrupted, resumed):
    for run in ('train', 'eval'):
        whole = scalars(os.path.join(uninterrupted, run))
        killed = scalars(os.path.join(resumed[0], run))
        for tag in ('batch/learning_rate', 'batch/loss', 'batch/accuracy', 'epoch/loss', 'epoch/accuracy') \
                if run == 'train' else ('epoch/loss', 'epoch/accuracy'):
            reference = dict(whole[tag])
            assert len(reference) == len(whole[tag]), 'one value per step without interruption'
            assert {step for step, _ in killed[tag]} == set(reference)
            # Steps logged after the last checkpoint are logged again on resume, with the same values.
            for step, value in killed[tag]:
                assert value == reference[step], (run, tag, step)
    assert sorted(dict(scalars(os.path.join(uninterrupted, 'train'), 'batch')['learning_rate'])) == list(range(TOTAL))


def test_finished_run_says_so_and_exits_0(dirs, uninterrupted):
    again = finished(*common(dirs / 'data', uninterrupted))
    assert 'already finished at step' in again.stdout
    evaluations = json.loads(open(os.path.join(uninterrupted, 'evaluations.json')).read())
    final = evaluations[-1]
    assert f'eval: final loss {final["loss"]:.4f}, accuracy {final["accuracy"]:.4f}; best loss' in again.stdout


def _files(model_dir):
    """{path: (size, mtime, bytes)} of every checkpoint file in model_dir."""
    found = {}
    for name in os.listdir(model_dir):
        if name.startswith('ckpt-') or name in ('checkpoint', 'config.json'):
            path = os.path.join(model_dir, name)
            with open(path, 'rb') as f:
                found[name] = (os.path.getmtime(path), f.read())
    return found


BAD = {
    'unknown schedule': (['--schedule=sgdr'], 'flag --schedule=sgdr: value should be one of'),
    'unknown dataset': (['--dataset=fashion_mnits'], '--dataset=fashion_mnits is not a tensorflow-datasets name'),
    'warmup longer than the run': (['--warmup_steps=5000'], '--warmup_steps=5000 is a warmup of 5000 steps, not '
                                   f'shorter than the run ({TOTAL} steps)'),
    'warmup in epochs longer than the run': (['--warmup_epochs=4.5'],
                                             '--warmup_epochs=4.5 is a warmup of 3375 steps'),
    'negative rate': (['--initial_lr=-0.1'], '--initial_lr: initial_lr must be a finite number > 0, got -0.1'),
    'batch larger than the split': (['--batch_size=7000'], '--batch_size=7000 is larger than the training split '
                                    '(6000 examples)'),
    'steps and epochs': (['--train_steps=10'], '--epochs and --train_steps were both given'),
    'bad split': (['--eval_split=tset'], "--train_split/--eval_split='tset'"),
    'other settings than the run in model_dir': (['--warmup_steps=50', '--seed=8'],
                                                 'holds a run with seed=7, not 8'),
    'missing flagfile': (['--flagfile=configs/nonexistent.flags'], '--flagfile: cannot open'),
    'non-numeric': (['--batch_size=eight'], 'flag --batch_size=eight: invalid literal'),
}


@pytest.fixture(scope='module')
def bad_runs(dirs, uninterrupted):
    """Every BAD case against the finished run's model_dir, and one with a file for a folder in model_dir;
    {case: ((stdout, stderr), status)}."""
    before = _files(uninterrupted)
    cases = {case: [*common(dirs / 'data', uninterrupted, warmup=False), *args] for case, (args, _) in BAD.items()}
    cases['unwritable model_dir'] = common(dirs / 'data', dirs / 'whole' / 'config.json' / 'run')
    results = dict(zip(cases, main_in_process(cases.values())))
    assert _files(uninterrupted) == before, 'a bad command touched the existing run'
    return {case: ((out, err), status) for case, (status, out, err) in results.items()}


@pytest.mark.parametrize('case', [*BAD, 'unwritable model_dir'])
def test_bad_input_one_line_and_exit_status(bad_runs, case):
    (stdout, stderr), status = bad_runs[case]
    expected = BAD[case][1] if case in BAD else 'is not a usable folder'
    assert status == 2, stderr[-2000:]
    errors = [line for line in stderr.splitlines() if line.startswith('error: ')]
    assert len(errors) == 1 and expected in errors[0], stderr[-2000:]
    assert stderr.rstrip().endswith(errors[0]) and 'Traceback' not in stderr
    assert stdout == ''


@pytest.mark.parametrize('name', ['fashion_mnist_polynomial', 'fashion_mnist_cosine',
                                  'fashion_mnist_cosine_restarts', 'quick'])
def test_config_files_parse_and_later_flags_override(name):
    values = flags.FlagValues()
    trainer_flags.define(values)
    flagfile = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'configs', f'{name}.flags')
    values(['trainer', f'--flagfile={flagfile}', '--seed=3'])
    config = trainer_flags.to_config(values)
    assert (config.dataset, config.model, config.optimizer, config.batch_size) == ('fashion_mnist', 'cnn',
                                                                                   'adam', 32)
    assert dict(config.schedule_params)['initial_lr'] == 1e-3 and config.seed == 3
    assert config.epochs == (3 if name == 'quick' else 15)
    assert config.model_dir == f'runs/{name}'


def test_best_config_is_ten_epochs_of_the_seed_cnn_with_cutout_weight_decay_and_an_average():
    values = flags.FlagValues()
    trainer_flags.define(values)
    flagfile = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'configs', 'fashion_mnist_best.flags')
    values(['trainer', f'--flagfile={flagfile}'])
    config = trainer_flags.to_config(values)
    assert (config.dataset, config.model, config.optimizer, config.batch_size, config.epochs) == (
        'fashion_mnist', 'cnn', 'adam', 32, 10)
    assert dict(config.schedule_params)['initial_lr'] == 1e-3 and config.schedule == 'cosine'
    assert config.augment == ('cutout',) and config.cutout_size == 12 and config.ema_momentum == 0.999
    assert config.weight_decay == 0.05


def test_config_json_records_the_run(uninterrupted):
    with open(os.path.join(uninterrupted, 'config.json')) as f:
        settings = json.load(f)
    assert settings['schedule'] == 'cosine_restarts' and settings['schedule.cycle_steps'] == 700
    with open(os.path.join(uninterrupted, 'evaluations.json')) as f:
        assert [e['step'] for e in json.load(f)] == [STEPS_PER_EPOCH * (k + 1) for k in range(4)]
