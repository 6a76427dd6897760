"""The learning-rate range test (trainer.range_test, trainer.find_lr, --initial_lr=auto) on tiny data.

References are independent: a numpy float64 closed form of the rising rate, the same test run twice, and a
run given the found rate as a number.
"""
import json
import os
import re
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import trainer
from test_trainer_support import REPO, scalars
from trainer import faults, range_test
from trainer.config import ConfigError


def _regression(count=256, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, 8)).astype('float32')
    y = (x @ rng.normal(size=8)).astype('float32')
    return tf.data.Dataset.from_tensor_slices((x, y))


def _model(spec):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation='relu'), keras.layers.Dense(1)])
    model.compile(loss='mse')
    return model


def test_the_rising_rate_is_exponential_from_min_to_max():
    rising = range_test.schedule(1e-7, 10.0, 200)
    steps = np.arange(0, 260)
    expected = np.minimum(1e-7 * (10.0 / 1e-7) ** (steps / 199.0), 10.0)  # float64 closed form
    np.testing.assert_allclose(rising(steps).numpy(), expected, rtol=2e-6)
    assert float(rising(199)) == pytest.approx(10.0, rel=1e-6) and float(rising(250)) == pytest.approx(10.0, rel=1e-6)


def test_smoothing_is_the_bias_corrected_moving_average():
    losses = [3.0, 1.0, 2.0, 0.5]
    expected, average = [], 0.0
    for i, loss in enumerate(losses):
        average = 0.98 * average + 0.02 * loss
        expected.append(average / (1 - 0.98 ** (i + 1)))
    assert range_test.smooth(losses) == pytest.approx(expected)
    assert range_test.smooth(losses)[0] == 3.0


def test_it_stops_at_divergence_and_suggests_the_same_rate_every_time(tmp_path):
    runs = [trainer.find_lr(_model, _regression(), out=str(tmp_path / f'test{i}'), min_lr=1e-5, max_lr=100.0,
                            num_steps=120, optimizer='sgd', batch_size=16, seed=3, interactive=False)
            for i in range(2)]
    first, second = runs
    assert first.suggestion == second.suggestion and first.losses == second.losses  # deterministic for a seed
    assert len(first.losses) < 120  # the rate reached 100: the loss blew up long before the end
    assert first.stopped.startswith(('the smoothed loss passed 4 times its minimum at step', 'a non-finite loss'))
    smoothed = range_test.smooth(list(first.losses))
    if first.stopped.startswith('the smoothed'):
        assert smoothed[-1] > 4 * min(smoothed) and max(smoothed[:-1]) <= 4 * min(smoothed[:-1]) + 1e-12
    assert 1e-5 < first.suggestion < 100.0
    # The per-step scalars are the loop's: the rising rate and the loss of each step.
    logged = scalars(tmp_path / 'test0' / 'train', 'batch')
    assert [s for s, _ in logged['learning_rate']] == list(range(len(first.losses)))
    np.testing.assert_allclose([v for _, v in logged['learning_rate']], first.rates, rtol=1e-6)
    np.testing.assert_allclose([v for _, v in logged['loss']], first.losses, rtol=1e-6)
    assert os.path.getsize(first.figure) > 10_000


def test_the_candidates_read_the_curve_as_their_rules_say():
    rates = list(np.geomspace(1e-4, 1.0, 60))
    # A loss that falls fastest (against log rate) at rate index 30, bottoms out at 45, then rises.
    log_rate = np.log(rates)
    smoothed = list(2.0 - np.tanh((log_rate - log_rate[30]) * 2) + np.where(np.arange(60) > 45,
                                                                              (np.arange(60) - 45) * 0.3, 0.0))
    found = range_test.candidates(rates, smoothed)
    assert found['steepest'] == rates[30]
    lowest = 10 + int(np.argmin(smoothed[10:55]))
    assert found['minimum/10'] == pytest.approx(rates[lowest] / 10)
    assert rates[0] < found['valley'] < rates[lowest]
    assert range_test.candidates(rates, [1.0] * 60) == {}  # flat: nothing to read


class _Frozen(keras.layers.Layer):
    """x * 0 * w: a trainable weight that changes nothing, so the loss never decreases."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(), initializer='ones')

    def call(self, x):
        return x[:, :1] * 0.0 * self.w


def _frozen_model(spec):
    model = keras.Sequential([keras.Input((8,)), _Frozen()])
    model.compile(loss='mse')
    return model


def _zero_targets():
    """Targets the frozen model predicts exactly: its loss is 0 at every step, whatever the rate."""
    return tf.data.Dataset.from_tensor_slices((np.ones([64, 8], np.float32), np.zeros([64], np.float32)))


def test_a_loss_that_never_decreases_gives_no_suggestion_and_auto_stops(tmp_path):
    result = trainer.find_lr(_frozen_model, _zero_targets(), out=str(tmp_path / 'test'), num_steps=40,
                             batch_size=16, interactive=False)
    assert result.suggestion is None and result.rule == 'the loss never decreased'
    with pytest.raises(faults.Stop, match=r'^--initial_lr=auto: the range test found no rate \(the loss never '
                                          r'decreased; it ran 100 steps, all 100 steps\); give --initial_lr a number$'):
        trainer.train(_frozen_model, _zero_targets(), model_dir=str(tmp_path / 'run'), schedule='cosine',
                      schedule_params={'initial_lr': 'auto'}, batch_size=16, train_steps=5, interactive=False)
    assert not os.path.exists(tmp_path / 'run' / 'config.json')


@pytest.mark.parametrize('settings, message', [
    (dict(min_lr=1.0, max_lr=1e-3), '--min_lr=1.0 and --max_lr=0.001: the range test needs 0 < min_lr < max_lr'),
    (dict(min_lr=0.0), '--min_lr=0.0 and --max_lr=10.0: the range test needs 0 < min_lr < max_lr'),
    (dict(num_steps=10), '--num_steps=10 is too few for a range test; give at least 20'),
])
def test_bad_range_test_settings_are_one_line(tmp_path, settings, message):
    with pytest.raises(ConfigError) as raised:
        trainer.find_lr(_model, _regression(), out=str(tmp_path / 'test'), batch_size=16, interactive=False,
                        **settings)
    assert str(raised.value).startswith(message)
    assert not (tmp_path / 'test').exists()


def _auto_run(model_dir, initial_lr='auto', **settings):
    return trainer.train(_model, _regression(), _regression(64, seed=1), model_dir=str(model_dir), schedule='cosine',
                         schedule_params={'initial_lr': initial_lr}, optimizer='sgd', batch_size=16, epochs=2,
                         seed=4, deterministic=True, checkpoint_steps=4, keep_checkpoints=10, interactive=False,
                         **settings)


def test_auto_keeps_the_runs_initial_weights_and_data_and_resumes_without_a_new_test(tmp_path, capsys):
    auto = _auto_run(tmp_path / 'auto')
    recorded = json.loads((tmp_path / 'auto' / 'config.json').read_text())
    found = recorded['found_initial_lr']
    assert recorded['schedule.initial_lr'] == 'auto' and found > 0
    assert f'--initial_lr=auto: range test: suggested peak rate {found:.3g}' in capsys.readouterr().out
    # The same run given the found rate as a number: the range test changed neither the initial weights nor
    # the data order, so the weights are equal to the bit.
    given = _auto_run(tmp_path / 'given', initial_lr=found)
    for a, b in zip(auto.model.get_weights(), given.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert max(v for _, v in scalars(tmp_path / 'auto' / 'train', 'batch')['learning_rate']) == pytest.approx(found, rel=1e-6)
    # As if stopped after step 8: a resume uses the recorded rate and runs no new test.
    for name in os.listdir(tmp_path / 'auto'):
        number = re.match(r'ckpt-(\d+)\.', name)
        if (number and int(number.group(1)) > 8) or name == 'export':
            path = tmp_path / 'auto' / name
            shutil.rmtree(path) if path.is_dir() else os.remove(path)
    tf.compat.v1.train.update_checkpoint_state(str(tmp_path / 'auto'), 'ckpt-8')
    events = sorted(os.listdir(tmp_path / 'auto' / 'range_test' / 'train'))
    resumed = _auto_run(tmp_path / 'auto')
    out = capsys.readouterr().out
    assert f'--initial_lr=auto: {found:.3g}, found by the range test when the run started (config.json)' in out
    assert 'resuming' in out and sorted(os.listdir(tmp_path / 'auto' / 'range_test' / 'train')) == events
    for a, b in zip(resumed.model.get_weights(), given.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # A run with a number in that folder is refused, as any other setting that differs.
    with pytest.raises(ConfigError, match=re.escape(f'holds a run with found_initial_lr={found!r}, not None')):
        _auto_run(tmp_path / 'auto', initial_lr=0.1)


def test_a_built_model_gets_its_initial_weights_back(tmp_path):
    model = _model(None)
    before = [w.copy() for w in model.get_weights()]
    trainer.find_lr(model, _regression(), out=str(tmp_path / 'test'), num_steps=30, batch_size=16, interactive=False)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_the_cli_prints_a_line_to_paste(tmp_path):
    (tmp_path / 'data').mkdir()
    args = [f'--data_dir={tmp_path / "data"}', '--train_split=train[:512]', '--model=mlp', '--batch_size=16']
    done = subprocess.run([sys.executable, '-m', 'trainer.find_lr', *args, '--num_steps=60',
                           f'--out={tmp_path / "out"}'], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith('python -m trainer.main ' + ' '.join(args) + ' --initial_lr=')
    assert float(last.rsplit('=', 1)[1]) > 0 and (tmp_path / 'out' / 'range_test.png').exists()
    bad = subprocess.run([sys.executable, '-m', 'trainer.find_lr', *args, '--min_lr=1', '--max_lr=0.1',
                          f'--out={tmp_path / "never"}'], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith(
        'error: --min_lr=1.0 and --max_lr=0.1: the range test needs 0 < min_lr < max_lr')
    assert 'Traceback' not in bad.stderr and not (tmp_path / 'never').exists()
