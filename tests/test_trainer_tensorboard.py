"""A real TensorBoard server on a loopback port reads a finished run's scalars over its HTTP API."""
import json
import urllib.request

import numpy as np
import pytest

from test_trainer_support import finished, get_json, scalars, scratch, tensorboard

STEPS = 600 // 16  # train[:1%] at batch 16, one epoch


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    """A finished tiny run started from configs/quick.flags, later flags overriding it."""
    base = scratch(tmp_path_factory, 'tb')
    model_dir = base / 'runs' / 'tiny'
    finished('--flagfile=configs/quick.flags', f'--data_dir={base / "data"}', f'--model_dir={model_dir}',
             '--model=mlp', '--train_split=train[:1%]', '--eval_split=test[:1%]', '--batch_size=16', '--epochs=1',
             '--warmup_epochs=0.25')
    return model_dir


@pytest.fixture(scope='module')
def server(run_dir):
    with tensorboard(run_dir.parent, load_fast=False, serves=lambda tags: 'tiny/train' in tags) as port:
        yield port


def test_flagfile_values_with_later_overrides(run_dir):
    with open(run_dir / 'config.json') as f:
        settings = json.load(f)
    assert (settings['schedule'], settings['epochs'], settings['model']) == ('cosine', 1, 'mlp')
    assert settings['schedule.warmup_epochs'] == 0.25


def test_tensorboard_serves_every_step(server, run_dir):
    tags = get_json(server, '/data/plugin/scalars/tags')
    assert {'learning_rate', 'loss', 'accuracy'} <= set(tags['tiny/train'])
    assert set(tags['tiny/eval']) == {'loss', 'accuracy'}
    files = scalars(run_dir / 'train')
    for tag in ('learning_rate', 'loss', 'accuracy'):
        points = get_json(server, '/data/plugin/scalars/scalars', run='tiny/train', tag=tag)
        assert [step for _, step, _ in points] == list(range(STEPS))
        assert [value for _, _, value in points] == [value for _, value in files[tag]]
    rates = [value for _, _, value in get_json(server, '/data/plugin/scalars/scalars', run='tiny/train',
                                           tag='learning_rate')]
    warmup = round(0.25 * STEPS)
    expected = [1e-3 * s / warmup if s < warmup else
                1e-3 * (1 + np.cos(np.pi * (s - warmup) / (STEPS - warmup))) / 2 for s in range(STEPS)]
    np.testing.assert_allclose(rates, expected, rtol=1e-5, atol=1e-12)
    evaluation = get_json(server, '/data/plugin/scalars/scalars', run='tiny/eval', tag='accuracy')
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
    final = get_json(server, '/data/plugin/scalars/scalars', run='tiny/eval', tag='accuracy')[-1]
    assert metrics[('eval', 'accuracy')]['value'] == pytest.approx(final[2])
    assert metrics[('eval', 'accuracy')]['trainingStep'] == STEPS
