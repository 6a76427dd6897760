"""A real TensorBoard server on a loopback port reads a finished run's scalars over its HTTP API."""
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest

from test_trainer_support import run_main, scalars

STEPS = 600 // 16  # train[:1%] at batch 16, one epoch


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _get(port, path, **query):
    url = f'http://127.0.0.1:{port}{path}?{urllib.parse.urlencode(query)}'
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    """A finished tiny run started from configs/quick.flags, later flags overriding it."""
    base = tmp_path_factory.mktemp('tb')
    (base / 'data').mkdir()
    model_dir = base / 'runs' / 'tiny'
    done = run_main('--flagfile=configs/quick.flags', f'--data_dir={base / "data"}', f'--model_dir={model_dir}',
                    '--model=mlp', '--train_split=train[:1%]', '--eval_split=test[:1%]', '--batch_size=16',
                    '--epochs=1', '--warmup_epochs=0.25')
    assert done.returncode == 0, done.stderr[-3000:]
    return model_dir


@pytest.fixture(scope='module')
def server(run_dir):
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, '-m', 'tensorboard.main', f'--logdir={run_dir.parent}', '--host=127.0.0.1',
         f'--port={port}', '--load_fast=false', '--reload_interval=1'],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if 'tiny/train' in _get(port, '/data/plugin/scalars/tags'):
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert process.poll() is None, process.stderr.read()[-2000:]
            assert time.monotonic() < deadline, 'TensorBoard did not serve the run within 90 s'
            time.sleep(0.5)
        yield port
    finally:
        process.kill()
        process.wait(timeout=30)


def test_flagfile_values_with_later_overrides(run_dir):
    with open(run_dir / 'config.json') as f:
        settings = json.load(f)
    assert (settings['schedule'], settings['epochs'], settings['model']) == ('cosine', 1, 'mlp')
    assert settings['schedule.warmup_epochs'] == 0.25


def test_tensorboard_serves_every_step(server, run_dir):
    tags = _get(server, '/data/plugin/scalars/tags')
    assert {'learning_rate', 'loss', 'accuracy'} <= set(tags['tiny/train'])
    assert set(tags['tiny/eval']) == {'loss', 'accuracy'}
    files = scalars(run_dir / 'train')
    for tag in ('learning_rate', 'loss', 'accuracy'):
        points = _get(server, '/data/plugin/scalars/scalars', run='tiny/train', tag=tag)
        assert [step for _, step, _ in points] == list(range(STEPS))
        assert [value for _, _, value in points] == [value for _, value in files[tag]]
    rates = [value for _, _, value in _get(server, '/data/plugin/scalars/scalars', run='tiny/train',
                                           tag='learning_rate')]
    warmup = round(0.25 * STEPS)
    expected = [1e-3 * s / warmup if s < warmup else
                1e-3 * (1 + np.cos(np.pi * (s - warmup) / (STEPS - warmup))) / 2 for s in range(STEPS)]
    np.testing.assert_allclose(rates, expected, rtol=1e-5, atol=1e-12)
    evaluation = _get(server, '/data/plugin/scalars/scalars', run='tiny/eval', tag='accuracy')
    assert [step for _, step, _ in evaluation] == [STEPS]


def test_tensorboard_hparams_table_has_the_run_and_its_final_eval(server):
    request = urllib.request.Request(
        f'http://127.0.0.1:{server}/data/plugin/hparams/session_groups',
        data=json.dumps({'allowedStatuses': ['STATUS_UNKNOWN'], 'colParams': [], 'startIndex': 0,
                         'sliceSize': 10}).encode(), headers={'Content-Type': 'application/json',
                                                               'X-TensorBoard-Feature-Flags': '{}'})
    with urllib.request.urlopen(request, timeout=10) as response:
        groups = json.load(response)['sessionGroups']
    assert [g['name'] for g in groups] == ['tiny']
    hparams = groups[0]['hparams']
    assert hparams['schedule'] == 'cosine' and hparams['schedule.total_steps'] == STEPS
    metrics = {(m['name']['group'], m['name']['tag']): m for m in groups[0]['sessions'][0]['metricValues']}
    final = _get(server, '/data/plugin/scalars/scalars', run='tiny/eval', tag='accuracy')[-1]
    assert metrics[('eval', 'accuracy')]['value'] == pytest.approx(final[2])
    assert metrics[('eval', 'accuracy')]['trainingStep'] == STEPS
