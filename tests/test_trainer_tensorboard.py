"""A real TensorBoard server on a loopback port reads two finished runs with different schedules over its HTTP
API: the scalars of every step, the tag layout, and the HParams table that compares the runs."""
import json
import urllib.request

import numpy as np
import pytest

from test_trainer_support import finished, get_json, scalars, scratch, tensorboard

STEPS_PER_EPOCH = 600 // 16  # train[:1%] at batch 16
EPOCHS = 2
TOTAL = EPOCHS * STEPS_PER_EPOCH
RUNS = {'cosine': ('--schedule=cosine', '--warmup_epochs=0.25'),
        'restarts': ('--schedule=cosine_restarts', '--warmup_epochs=0.5', '--cycle_epochs=1')}
STATUSES = ['STATUS_UNKNOWN', 'STATUS_SUCCESS', 'STATUS_FAILURE', 'STATUS_RUNNING']


@pytest.fixture(scope='module')
def logdir(tmp_path_factory):
    """Two finished tiny runs started from configs/quick.flags, later flags overriding it."""
    base = scratch(tmp_path_factory, 'tb')
    for name, flags in RUNS.items():
        finished('--flagfile=configs/quick.flags', f'--data_dir={base / "data"}', f'--model_dir={base / "runs" / name}',
                 '--model=mlp', '--train_split=train[:1%]', '--eval_split=test[:1%]', '--batch_size=16',
                 f'--epochs={EPOCHS}', *flags)
    return base / 'runs'


@pytest.fixture(scope='module')
def server(logdir):
    with tensorboard(logdir, load_fast=False,
                     serves=lambda tags: {'cosine/hparams', 'restarts/hparams'} <= set(tags)) as port:
        yield port


def post_json(port, path, body):
    request = urllib.request.Request(f'http://127.0.0.1:{port}{path}', data=json.dumps(body).encode(),
                                     headers={'Content-Type': 'application/json',
                                              'X-TensorBoard-Feature-Flags': '{}'})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def test_flagfile_values_with_later_overrides(logdir):
    with open(logdir / 'cosine' / 'config.json') as f:
        settings = json.load(f)
    assert (settings['schedule'], settings['epochs'], settings['model']) == ('cosine', EPOCHS, 'mlp')
    assert settings['schedule.warmup_epochs'] == 0.25


def test_tensorboard_serves_every_step(server, logdir):
    files = scalars(logdir / 'cosine' / 'train')
    for tag in ('batch/learning_rate', 'batch/loss', 'batch/accuracy'):
        points = get_json(server, '/data/plugin/scalars/scalars', run='cosine/train', tag=tag)
        assert [step for _, step, _ in points] == list(range(TOTAL))
        assert [value for _, _, value in points] == [value for _, value in files[tag]]
    rates = [value for _, _, value in get_json(server, '/data/plugin/scalars/scalars', run='cosine/train',
                                           tag='batch/learning_rate')]
    warmup = round(0.25 * STEPS_PER_EPOCH)
    expected = [1e-3 * s / warmup if s < warmup else
                1e-3 * (1 + np.cos(np.pi * (s - warmup) / (TOTAL - warmup))) / 2 for s in range(TOTAL)]
    np.testing.assert_allclose(rates, expected, rtol=1e-5, atol=1e-12)
    evaluation = get_json(server, '/data/plugin/scalars/scalars', run='cosine/eval', tag='epoch/accuracy')
    assert [step for _, step, _ in evaluation] == [STEPS_PER_EPOCH * (e + 1) for e in range(EPOCHS)]


def test_tag_layout(server):
    """The groups TensorBoard opens first (the first two by name) hold the learning rate, the per-step values
    and the epoch means with eval on the same cards; throughput and the session's results come after them."""
    tags = get_json(server, '/data/plugin/scalars/tags')
    assert sorted(tags) == ['cosine/eval', 'cosine/hparams', 'cosine/train',
                            'restarts/eval', 'restarts/hparams', 'restarts/train']  # no run without scalars
    for name in RUNS:
        assert set(tags[f'{name}/train']) == {'batch/learning_rate', 'batch/loss', 'batch/accuracy', 'epoch/loss',
                                              'epoch/accuracy', 'throughput/steps_per_sec',
                                              'throughput/examples_per_sec'}
        assert set(tags[f'{name}/eval']) == {'epoch/loss', 'epoch/accuracy'}
        assert set(tags[f'{name}/hparams']) == {'result/loss', 'result/accuracy', 'result/best_loss',
                                                'result/best_accuracy'}
    images = get_json(server, '/data/plugin/images/tags')
    assert set(images['cosine/train']) == {'batch/schedule'}
    groups = sorted({tag.split('/')[0] for run in tags.values() for tag in run} | {'batch'})
    assert groups[:2] == ['batch', 'epoch'] and groups[2:] == ['result', 'throughput']


def test_hparams_compare_the_schedules(server, logdir):
    experiment = post_json(server, '/data/plugin/hparams/experiment', {'experimentName': '', 'includeMetrics': True})
    infos = {info['name']: info for info in experiment['hparamInfos']}
    assert infos['schedule']['differs'] and sorted(infos['schedule']['domainDiscrete']) == ['cosine',
                                                                                          'cosine_restarts']
    warmups = [round(0.25 * STEPS_PER_EPOCH), round(0.5 * STEPS_PER_EPOCH)]
    assert infos['schedule.warmup_steps']['differs']
    assert infos['schedule.warmup_steps']['domainInterval'] == {'minValue': min(warmups), 'maxValue': max(warmups)}
    # TensorBoard's table shows the first five it is given; the server puts those that differ first.
    differing = [info['name'] for info in experiment['hparamInfos'] if info['differs']]
    assert experiment['hparamInfos'][:len(differing)] == [infos[n] for n in differing]
    assert {'schedule', 'schedule.warmup_steps'} <= set(differing[:5])
    assert not infos['batch_size']['differs']
    metrics = sorted((m['name']['group'], m['name']['tag']) for m in experiment['metricInfos'])
    assert metrics == [('', 'result/accuracy'), ('', 'result/best_accuracy'), ('', 'result/best_loss'),
                       ('', 'result/loss')]

    groups = post_json(server, '/data/plugin/hparams/session_groups',
                       {'allowedStatuses': STATUSES, 'colParams': [], 'startIndex': 0, 'sliceSize': 10})
    groups = {group['name']: group for group in groups['sessionGroups']}
    assert sorted(groups) == sorted(RUNS)
    for name, group in groups.items():
        assert [s['status'] for s in group['sessions']] == ['STATUS_SUCCESS']
        assert group['hparams']['schedule.warmup_steps'] == warmups[name == 'restarts']
        with open(logdir / name / 'evaluations.json') as f:
            evaluations = json.load(f)
        assert len(evaluations) == EPOCHS
        values = {m['name']['tag']: (m['value'], m['trainingStep']) for m in group['metricValues']}
        final = evaluations[-1]
        best_loss = min(evaluations, key=lambda e: e['loss'])
        best_accuracy = max(evaluations, key=lambda e: e['accuracy'])
        assert values['result/loss'] == (pytest.approx(final['loss'], rel=1e-6), TOTAL)
        assert values['result/accuracy'] == (pytest.approx(final['accuracy'], rel=1e-6), TOTAL)
        assert values['result/best_loss'] == (pytest.approx(best_loss['loss'], rel=1e-6), best_loss['step'])
        assert values['result/best_accuracy'] == (pytest.approx(best_accuracy['accuracy'], rel=1e-6),
                                                  best_accuracy['step'])
