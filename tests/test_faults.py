"""Issue 6: nothing is lost when `python -m trainer.main` is killed, stopped, diverges or gets bad input.

Every scenario drives the real entry point in a subprocess (tiny slices of the real Fashion-MNIST, the mlp,
--deterministic) and compares with one uninterrupted reference run. Waits are bounded; where a test must
catch a run at a chosen point it freezes the process (SIGSTOP) first, so nothing depends on timing.
"""
import glob
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent import futures

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.backend.event_processing import plugin_event_accumulator as accumulator

from trainer import recovery
from test_trainer_support import (REPO, checkpoint_values, get_json, main_in_process, run_main, scalars,
                                  session_status, tensorboard)

STEPS_PER_EPOCH = 1024 // 8
TOTAL = 4 * STEPS_PER_EPOCH
CHECKPOINT_STEPS = 32
# Per step, and the epoch means (kept exact across a resume within an epoch by the checkpoint).
TRAIN_TAGS = ('batch/learning_rate', 'batch/loss', 'batch/accuracy', 'epoch/loss', 'epoch/accuracy')
EVAL_TAGS = ('epoch/loss', 'epoch/accuracy')
WAIT = 240  # seconds: the bound of every wait for a subprocess


def common(data_dir, model_dir, *extra):
    return [f'--data_dir={data_dir}', f'--model_dir={model_dir}', '--train_split=train[:1024]',
            '--eval_split=test[:256]', '--model=mlp', '--batch_size=8', '--epochs=4', '--schedule=cosine',
            '--steps_per_loop=8', f'--checkpoint_steps={CHECKPOINT_STEPS}', '--deterministic', '--seed=5', *extra]


def finish(process):
    """(returncode, stdout, stderr) of a Popen, waiting at most WAIT seconds."""
    try:
        out, err = process.communicate(timeout=WAIT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f'trainer.main did not end within {WAIT} s: {err[-2000:]}')
    return process.returncode, out, err


def wait_for(condition, process=None, what='condition'):
    deadline = time.monotonic() + WAIT
    while not condition():
        if process is not None and process.poll() is not None:
            pytest.fail(f'trainer.main ended (status {process.returncode}) before {what}: '
                        f'{process.stderr.read()[-2000:]}')
        assert time.monotonic() < deadline, f'no {what} within {WAIT} s'
        time.sleep(0.01)


def events(path):
    """Every event of one event file (a file being written is read up to its last whole record)."""
    try:
        return list(event_file_loader.EventFileLoader(path).Load())
    except (tf.errors.OpError, OSError):
        return []


def event_files(run_dir, pid=None):
    files = sorted(glob.glob(os.path.join(run_dir, 'events.out.tfevents.*')))
    return [f for f in files if pid is None or f'.{pid}.' in os.path.basename(f)]


def logged_steps(run_dir, pid):
    """Steps of the scalar `batch/loss` that process `pid` has on disk in run_dir."""
    return [e.step for f in event_files(run_dir, pid) for e in events(f)
            for v in e.summary.value if v.tag == 'batch/loss']


def latest_step_of(path):
    """N of `.../ckpt-N` or `.../ckpt-N.index`."""
    return int(re.search(r'ckpt-(\d+)(\.index)?$', path).group(1))


def latest_step(model_dir):
    latest = tf.train.latest_checkpoint(model_dir)
    return latest_step_of(latest) if latest else 0


def starts(run_dir):
    """[(event file, step)] of every SessionLog.START, in file order."""
    return [(os.path.basename(f), e.step) for f in event_files(run_dir) for e in events(f)
            if e.HasField('session_log') and e.session_log.status == tf.compat.v1.SessionLog.START]


def multiplexer_view(run_dir, tags):
    """{tag: [(step, value)]} as TensorBoard's event multiplexer (--load_fast=false) serves a run folder."""
    acc = accumulator.EventAccumulator(run_dir, size_guidance={accumulator.TENSORS: 0},
                                       purge_orphaned_data=True)
    acc.Reload()
    return {tag: [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)] for tag in tags}


def freeze_at(process, condition, what):
    """SIGSTOPs `process` as soon as condition() holds (checked while it is stopped: no race)."""
    deadline = time.monotonic() + WAIT
    while True:
        if process.poll() is not None:
            pytest.fail(f'trainer.main ended (status {process.returncode}) before {what}: '
                        f'{process.stderr.read()[-2000:]}')
        process.send_signal(signal.SIGSTOP)
        if condition():
            return
        process.send_signal(signal.SIGCONT)
        assert time.monotonic() < deadline, f'no {what} within {WAIT} s'
        time.sleep(0.01)


def kill(process):
    """kill -9; returns the step the process had resumed from (0 if it started the run)."""
    process.send_signal(signal.SIGKILL)
    process.send_signal(signal.SIGCONT)
    status, out, _ = finish(process)
    assert status == -signal.SIGKILL
    found = re.search(r'resuming .* at step (\d+)/', out)
    return int(found.group(1)) if found else 0


def variables(path):
    reader = tf.train.load_checkpoint(path)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if not name.startswith(('save_counter', '_CHECKPOINTABLE_OBJECT_GRAPH'))}


def assert_same_weights(model_dir, reference):
    whole, other = checkpoint_values(reference), checkpoint_values(model_dir)
    assert sorted(whole) == sorted(other)
    for name in whole:
        np.testing.assert_array_equal(other[name], whole[name], err_msg=name)


def error_line(stderr):
    errors = [line for line in stderr.splitlines() if line.startswith('error: ')]
    assert len(errors) == 1, stderr[-3000:]
    assert 'Traceback' not in stderr, stderr[-3000:]
    return errors[0]


def files_of(model_dir):
    """{relative path: bytes} of everything in model_dir but the lock file; config.json as settings without
    model_dir (the tests copy runs to other folders, and a rerun records the folder it ran in)."""
    found = {}
    for root, _, names in os.walk(model_dir):
        for name in names:
            path = os.path.join(root, name)
            if name != 'lock':
                with open(path, 'rb') as f:
                    found[os.path.relpath(path, model_dir)] = f.read()
    settings = json.loads(found.pop('config.json'))
    settings.pop('model_dir')
    found['config.json'] = settings
    return found


@pytest.fixture(scope='module')
def base(tmp_path_factory):
    base = tmp_path_factory.mktemp('faults')
    (base / 'data').mkdir()  # empty: Debian's Fashion-MNIST files, no prepared copy
    (base / 'tb').mkdir()
    return base


@pytest.fixture(scope='module')
def reference(base):
    """The uninterrupted run every other run is compared with."""
    model_dir = base / 'tb' / 'reference'
    status, out, err = finish(run_main(*common(base / 'data', model_dir), wait=False))
    assert status == 0, err[-3000:]
    return str(model_dir)


# --- kill -9 at random moments, and the lock -------------------------------------------------------------

@pytest.fixture(scope='module')
def killed(base, reference):
    """Two identical commands started together on one model_dir (one must refuse), the other killed -9 at a
    random step; the rerun killed -9 again where it has logged steps past its latest checkpoint; the
    third run finishes. Returns (model_dir, refusal, resumed steps, seed)."""
    model_dir = base / 'tb' / 'killed'
    command = common(base / 'data', model_dir)
    first, second = run_main(*command, wait=False), run_main(*command, wait=False)
    wait_for(lambda: first.poll() is not None or second.poll() is not None, what='a refusal')
    loser, winner = (first, second) if first.poll() is not None else (second, first)
    refusal = (*finish(loser), winner.pid)

    seed = random.randrange(2**32)
    rng = random.Random(seed)
    target = rng.randrange(1, TOTAL - 2 * CHECKPOINT_STEPS)
    train = str(model_dir / 'train')
    freeze_at(winner, lambda: max(logged_steps(train, winner.pid), default=-1) >= target,
              f'step {target} logged (seed {seed})')
    assert kill(winner) == 0

    again = run_main(*command, wait=False)
    target = rng.randrange(target + 1, TOTAL - CHECKPOINT_STEPS)
    freeze_at(again, lambda: max(logged_steps(train, again.pid), default=-1) >= max(
        target, latest_step(str(model_dir))), f'a step past the latest checkpoint logged (seed {seed})')
    resumed = [kill(again)]

    status, out, err = finish(run_main(*command, wait=False))
    assert status == 0, err[-3000:]
    resumed.append(int(re.search(r'resuming .* at step (\d+)/', out).group(1)))
    return str(model_dir), refusal, resumed, seed


def test_second_run_on_a_model_dir_refuses_naming_the_first(killed):
    _, (status, out, err, winner_pid), _, _ = killed
    assert status == 2
    line = error_line(err)
    assert f'is in use by process {winner_pid} on {socket.gethostname()}' in line, line


def test_killed_runs_end_with_the_uninterrupted_weights(killed, reference):
    model_dir, _, resumed, seed = killed
    assert 0 < resumed[1] < TOTAL and resumed[0] <= resumed[1], (resumed, seed)
    assert_same_weights(model_dir, reference)


def test_raw_event_files_hold_the_zigzag_and_a_start_per_process(killed):
    model_dir, _, resumed, seed = killed
    raw = scalars(os.path.join(model_dir, 'train'), 'batch')['loss']
    steps = [step for step, _ in raw]
    assert len(steps) > len(set(steps)), f'no step was logged twice; nothing to purge (seed {seed})'
    assert set(steps) == set(range(TOTAL))
    # One START per process (4 started, one refused before writing), as the first event after the file
    # version, at the step the process began from.
    for run, offset in (('train', 0), ('eval', 1)):
        marks = starts(os.path.join(model_dir, run))
        assert [step for _, step in marks] == [offset, resumed[0] + offset, resumed[1] + offset], (run, seed)
        for name, _ in marks:
            first = events(os.path.join(model_dir, run, name))[:2]
            assert first[0].file_version == 'brain.Event:2' and first[1].HasField('session_log')


def test_tensorboard_multiplexer_shows_one_value_per_step_equal_to_the_uninterrupted_run(killed, reference):
    model_dir, _, _, seed = killed
    for run, tags in (('train', TRAIN_TAGS), ('eval', EVAL_TAGS)):
        expected = multiplexer_view(os.path.join(reference, run), tags)
        shown = multiplexer_view(os.path.join(model_dir, run), tags)
        for tag in tags:
            assert shown[tag] == expected[tag], (run, tag, seed)
    assert [s for s, _ in expected['epoch/loss']] == [STEPS_PER_EPOCH * (k + 1) for k in range(4)]


def test_tensorboard_data_server_shows_one_value_per_step_equal_to_the_uninterrupted_run(base, killed,
                                                                                          reference):
    """TensorBoard's default loader (--load_fast: its Rust data server) over HTTP."""
    def served(tags):
        return all(set(TRAIN_TAGS) <= set(tags.get(f'{r}/train', {})) and
                   set(EVAL_TAGS) <= set(tags.get(f'{r}/eval', {})) for r in ('killed', 'reference'))

    with tensorboard(base / 'tb', load_fast=True, serves=served, wait=WAIT) as port:
        def loaded():  # the data server loads the files in the background
            series = [get_json(port, '/data/plugin/scalars/scalars', run=f'{r}/{run}', tag=tag)
                      for r in ('killed', 'reference') for run, tag in (('train', 'batch/loss'), ('eval', 'epoch/loss'))]
            return [len(s) >= n for s, n in zip(series, (TOTAL, 4, TOTAL, 4))] == [True] * 4
        wait_for(loaded, what='TensorBoard loading every step')
        for run, tags in (('train', TRAIN_TAGS), ('eval', EVAL_TAGS)):
            for tag in tags:
                shown = [(s, v) for _, s, v in get_json(port, '/data/plugin/scalars/scalars',
                                                         run=f'killed/{run}', tag=tag)]
                expected = [(s, v) for _, s, v in get_json(port, '/data/plugin/scalars/scalars',
                                                            run=f'reference/{run}', tag=tag)]
                assert shown == expected, (run, tag, killed[3])
                if tag.startswith('batch/'):
                    assert [s for s, _ in shown] == list(range(TOTAL))


# --- SIGTERM and Ctrl-C ----------------------------------------------------------------------------------

def _signalled(base, name, signum):
    """A run sent `signum` once it has saved two checkpoints, so that one older than the stop's own exists
    whichever step the signal meets (the corrupted-checkpoint tests need it); (model_dir, status, stdout, stderr).
    """
    model_dir = base / name
    process = run_main(*common(base / 'data', model_dir), wait=False)
    wait_for(lambda: latest_step(str(model_dir)) >= 2 * CHECKPOINT_STEPS, process, 'a second checkpoint')
    process.send_signal(signum)
    return (str(model_dir), *finish(process))


@pytest.fixture(scope='module')
def stopped(base):
    """SIGTERM and Ctrl-C runs, started together; {signal: (model_dir, status, stdout, stderr, step)}, each
    model_dir copied to '<name>-copy' before anything else touches it."""
    with futures.ThreadPoolExecutor(2) as pool:
        runs = dict(zip((signal.SIGTERM, signal.SIGINT), pool.map(
            lambda a: _signalled(base, *a), (('sigterm', signal.SIGTERM), ('sigint', signal.SIGINT)))))
    result = {}
    for signum, (model_dir, status, out, err) in runs.items():
        shutil.copytree(model_dir, model_dir + '-copy')
        found = re.search(r'stopped by (SIGTERM|Ctrl-C) at step (\d+); checkpoint (\S+) saved', err)
        assert found, err[-3000:]
        result[signum] = (model_dir, status, out, err, int(found.group(2)), found.group(3))
    return result


@pytest.mark.parametrize('signum,status', [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_signal_saves_the_current_step_and_flushes_summaries(stopped, signum, status):
    model_dir, returned, _, err, step, path = stopped[signum]
    assert returned == status, err[-3000:]
    assert 'Traceback' not in err
    assert 0 < step < TOTAL and path == os.path.join(model_dir, f'ckpt-{step}')
    assert tf.train.latest_checkpoint(model_dir) == path
    assert int(variables(path)['step/.ATTRIBUTES/VARIABLE_VALUE']) == step
    # Every step before the stop is on disk (flushed), and none after it.
    logged = scalars(os.path.join(model_dir, 'train'), 'batch')
    for tag in ('learning_rate', 'loss', 'accuracy'):
        assert [s for s, _ in logged[tag]] == list(range(step)), tag
    # TensorBoard has no status for a run a rerun resumes: Unknown, in the one session file.
    assert session_status(model_dir + '-copy') == (1, 'STATUS_UNKNOWN')


def test_rerun_after_sigterm_ends_with_the_uninterrupted_weights(base, stopped, reference):
    model_dir = stopped[signal.SIGTERM][0]
    status, out, err = finish(run_main(*common(base / 'data', model_dir), wait=False))
    assert status == 0, err[-3000:]
    assert f'at step {stopped[signal.SIGTERM][4]}/' in out
    assert_same_weights(model_dir, reference)
    assert session_status(model_dir) == (1, 'STATUS_SUCCESS')


def test_second_ctrl_c_quits_at_once(base):
    """One loop call spans the whole run, so the first Ctrl-C's stop waits for its end; the second quits."""
    model_dir = base / 'twice'
    process = run_main(*common(base / 'data', model_dir, '--steps_per_loop=100000', '--checkpoint_steps=0',
                              '--train_split=train[:4096]', '--epochs=1'), wait=False)
    wait_for(lambda: os.path.isdir(model_dir / 'train'), process, 'training')
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stderr.readline, '')), daemon=True)
    reader.start()
    process.send_signal(signal.SIGINT)
    wait_for(lambda: any('Ctrl-C: stopping' in line for line in lines), process, 'the first Ctrl-C noticed')
    process.send_signal(signal.SIGINT)
    process.wait(timeout=WAIT)
    reader.join(timeout=WAIT)
    err = ''.join(lines)
    assert process.returncode == 130, err[-3000:]
    assert 'Ctrl-C again: quitting at once' in err and 'stopped by' not in err
    assert tf.train.latest_checkpoint(str(model_dir)) is None  # it did not wait for the loop call to save


# --- non-finite loss -------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def diverged(base):
    """The same run with a learning rate of 1e30 from step 100, once per --on_nonfinite mode."""
    def run(mode):
        model_dir = base / f'nan-{mode}'
        args = common(base / 'data', model_dir, '--schedule=piecewise_constant', '--boundaries=100',
                      '--values=0.001,1e30', f'--on_nonfinite={mode}')
        return str(model_dir), *finish(run_main(*args, wait=False))
    with futures.ThreadPoolExecutor(2) as pool:
        return dict(zip(('stop', 'skip'), pool.map(run, ('stop', 'skip'))))


def _all_checkpoints_finite(model_dir):
    paths = [p[:-len('.index')] for p in glob.glob(os.path.join(model_dir, 'ckpt-*.index'))]
    assert paths
    for path in paths:
        for name, value in variables(path).items():
            assert np.all(np.isfinite(value)), (path, name)
    return paths


def test_nonfinite_loss_stops_naming_the_step_and_the_last_good_checkpoint(diverged):
    model_dir, status, _, err = diverged['stop']
    assert status == 1, err[-3000:]
    line = error_line(err)
    losses = scalars(os.path.join(model_dir, 'train'), 'batch')['loss']
    bad = next(step for step, value in losses if not np.isfinite(value))
    assert bad >= 100 and all(np.isfinite(v) for s, v in losses if s < bad)
    last_good = tf.train.latest_checkpoint(model_dir)
    assert f'at step {bad}:' in line and f'the last good checkpoint is {last_good};' in line, line
    assert latest_step(model_dir) == (bad // CHECKPOINT_STEPS) * CHECKPOINT_STEPS
    _all_checkpoints_finite(model_dir)
    assert session_status(model_dir) == (1, 'STATUS_FAILURE')


def test_nonfinite_steps_skipped_are_no_ops(diverged):
    model_dir, status, out, err = diverged['skip']
    assert status == 0, err[-3000:]
    losses = dict(scalars(os.path.join(model_dir, 'train'), 'batch')['loss'])
    skipped = sorted(s for s, v in losses.items() if not np.isfinite(v))
    assert skipped and len(losses) == TOTAL
    warnings = re.findall(r'skipped (\d+) step\(s\) with a non-finite loss or gradient so far \(the last at '
                          r'step (\d+)\)', err)
    assert warnings, err[-3000:]
    for count, last in warnings:
        assert int(last) in skipped and int(count) == len([s for s in skipped if s <= int(last)])
    _all_checkpoints_finite(model_dir)
    final = variables(tf.train.latest_checkpoint(model_dir))
    # The global step counts every step (the schedule and the data stay aligned); the optimizer only the
    # applied ones.
    assert int(final['step/.ATTRIBUTES/VARIABLE_VALUE']) == TOTAL
    assert int(final['optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE']) == TOTAL - len(skipped)


# --- corrupted checkpoints ---------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def corrupted(base, stopped):
    """Copies of the SIGTERM-stopped run: latest checkpoint truncated; every checkpoint damaged."""
    source = stopped[signal.SIGTERM][0] + '-copy'
    one, every = str(base / 'corrupt-latest'), str(base / 'corrupt-all')
    shutil.copytree(source, one)
    shutil.copytree(source, every)
    latest = tf.train.latest_checkpoint(one)
    previous = sorted(latest_step_of(p) for p in glob.glob(os.path.join(one, 'ckpt-*.index')))[-2]
    with open(latest + '.data-00000-of-00001', 'r+b') as f:
        f.truncate(os.path.getsize(latest + '.data-00000-of-00001') // 2)
    damaged = sorted(glob.glob(os.path.join(every, 'ckpt-*.index')))
    for i, index in enumerate(damaged):
        if i % 2:
            with open(index, 'r+b') as f:  # garbage over the table of contents
                f.write(b'\xff' * 64)
        else:
            os.remove(index.replace('.index', '.data-00000-of-00001'))
    before = files_of(every)
    with futures.ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda d: finish(run_main(*common(base / 'data', d), wait=False)), (one, every)))
    return (one, latest, previous, runs[0]), (every, before, len(damaged), runs[1])


def test_truncated_latest_checkpoint_warns_and_resumes_from_the_previous(corrupted, reference):
    model_dir, latest, previous, (status, out, err) = corrupted[0]
    assert status == 0, err[-3000:]
    name = os.path.basename(latest)
    assert re.search(rf'unreadable checkpoint\(s\) skipped \({name}: .+\); resuming from .*ckpt-{previous}\n',
                     err), err[-3000:]
    assert f'resuming {model_dir} at step {previous}/' in out
    assert_same_weights(model_dir, reference)


def test_no_readable_checkpoint_stops_without_touching_the_run(corrupted):
    model_dir, before, count, (status, out, err) = corrupted[1]
    assert status == 1, err[-3000:]
    line = error_line(err)
    assert f'--model_dir={model_dir} has checkpoints but none is readable' in line
    assert line.count('ckpt-') >= count and 'not starting over' in line
    assert files_of(model_dir) == before


# --- unwritable model_dir, full disk -----------------------------------------------------------------------

_IN_NAMESPACE = """
set -u
mount -t tmpfs -o size="$SIZE" tmpfs "$MOUNT"
cp -a "$SOURCE" "$MOUNT/run" 2>/dev/null || true
[ "$READ_ONLY" = 1 ] && mount -o remount,ro "$MOUNT"
"$PYTHON" -m trainer.main "$@" --model_dir="$MOUNT/run" >"$OUT/stdout" 2>"$OUT/stderr"
echo $? >"$OUT/status"
df -k "$MOUNT" | tail -1 >"$OUT/df"
cp -a "$MOUNT/run" "$OUT/run"
"""


def _on_tmpfs(base, name, size, source='', read_only=False):
    """Runs trainer.main with its model_dir on a tmpfs of `size` mounted in a private mount namespace
    (`unshare -rm`: nothing is mounted on the machine); returns (status, stdout, stderr, copy of model_dir
    taken inside the namespace, mount point)."""
    out, mount = base / name, base / f'{name}-mount'
    out.mkdir()
    mount.mkdir()
    env = dict(os.environ, SIZE=size, MOUNT=str(mount), SOURCE=source, READ_ONLY=str(int(read_only)),
               OUT=str(out), PYTHON=sys.executable, TF_CPP_MIN_LOG_LEVEL='2')
    args = common(base / 'data', 'unused')[:1] + common(base / 'data', 'unused')[2:]
    done = subprocess.run(['unshare', '-rm', 'sh', '-c', _IN_NAMESPACE, 'sh', *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 0, done.stderr[-2000:]
    read = lambda f: (out / f).read_text()  # noqa: E731
    return int(read('status')), read('stdout'), read('stderr'), str(out / 'run'), str(mount)


@pytest.fixture(scope='module')
def tmpfs_runs(base, stopped):
    with futures.ThreadPoolExecutor(2) as pool:
        full = pool.submit(_on_tmpfs, base, 'full', '4400k')  # room for one checkpoint and a half
        read_only = pool.submit(_on_tmpfs, base, 'readonly', '64m', stopped[signal.SIGTERM][0] + '-copy',
                                read_only=True)
        return full.result(), read_only.result()


def test_disk_full_during_a_checkpoint_keeps_the_previous_one(tmpfs_runs):
    status, _, err, copy, mount = tmpfs_runs[0]
    assert status == 1, err[-3000:]
    line = error_line(err)
    kept = os.path.join(mount, 'run', f'ckpt-{CHECKPOINT_STEPS}')
    assert (f'cannot write the checkpoint of step {2 * CHECKPOINT_STEPS} into --model_dir={mount}/run' in line
            and 'No space left on device' in line and f'the latest checkpoint is still {kept}:' in line), line
    # The previous checkpoint is the latest, reads in full, and the partial one is gone.
    state = tf.train.get_checkpoint_state(copy)
    assert os.path.basename(state.model_checkpoint_path) == f'ckpt-{CHECKPOINT_STEPS}'
    assert int(variables(os.path.join(copy, f'ckpt-{CHECKPOINT_STEPS}'))['step/.ATTRIBUTES/VARIABLE_VALUE']) \
        == CHECKPOINT_STEPS
    assert not glob.glob(os.path.join(copy, f'ckpt-{2 * CHECKPOINT_STEPS}*'))


def test_read_only_model_dir_is_refused_and_its_checkpoint_stays_readable(tmpfs_runs, stopped):
    status, out, err, copy, mount = tmpfs_runs[1]
    assert status == 2, err[-3000:]
    line = error_line(err)
    assert f'--model_dir={mount}/run is not a usable folder (Read-only file system)' in line, line
    assert out == ''
    step = stopped[signal.SIGTERM][4]
    assert files_of(copy) == files_of(stopped[signal.SIGTERM][0] + '-copy')
    assert int(variables(tf.train.latest_checkpoint(copy))['step/.ATTRIBUTES/VARIABLE_VALUE']) == step


# --- every flag checked before any work --------------------------------------------------------------------

BAD = [
    (['--batch_size=0'], '--batch_size=0 must be a whole number >= 1'),
    (['--batch_size=-8'], '--batch_size=-8 must be a whole number >= 1'),
    (['--batch_size=eight'], "flag --batch_size=eight: invalid literal for int() with base 10: 'eight'"),
    (['--batch_size=2048'], '--batch_size=2048 is larger than the training split (1024 examples)'),
    (['--epochs=0'], '--epochs=0.0 must be a finite number > 0'),
    (['--epochs=-2'], '--epochs=-2.0 must be a finite number > 0'),
    (['--epochs=nan'], '--epochs=nan must be a finite number > 0'),
    (['--train_steps=10'], '--epochs and --train_steps were both given'),
    (['--steps_per_loop=0'], '--steps_per_loop=0 must be a whole number >= 1'),
    (['--checkpoint_steps=-1'], '--checkpoint_steps=-1 must be a whole number >= 0'),
    (['--keep_checkpoints=0'], '--keep_checkpoints=0 must be a whole number >= 1'),
    (['--seed=-1'], '--seed=-1 must be a whole number >= 0'),
    (['--augment=flip,blur'], "--augment='blur' is not one of: flip, cutout"),
    (['--augment=cutout', '--cutout_size=0'], '--cutout_size=0 must be a whole number >= 1'),
    (['--augment=cutout', '--cutout_size=29'], '--cutout_size=29 is larger than the images (28x28)'),
    (['--optimizer=sgd', '--momentum=1.5'], '--momentum=1.5 must be a number in [0, 1)'),
    (['--weight_decay=-0.1'], '--weight_decay=-0.1 must be a finite number >= 0'),
    (['--ema_momentum=1'], '--ema_momentum=1.0 must be a number in (0, 1)'),
    (['--initial_lr=0'], '--initial_lr: initial_lr must be a finite number > 0, got 0'),
    (['--initial_lr=nan'], '--initial_lr: initial_lr must be a finite number > 0, got nan'),
    (['--initial_lr=0.01', '--min_lr=0.1'], '--min_lr: min_lr must be at most initial_lr (0.01), got 0.1'),
    (['--train_split=train[50%:10%]'], "--train_split='train[50%:10%]' selects no examples of fashion_mnist"),
    (['--warmup_steps=1000'], '--warmup_steps=1000 is a warmup of 1000 steps, not shorter than the run '
                              f'({TOTAL} steps)'),
    (['--warmup_epochs=5'], f'--warmup_epochs=5.0 is a warmup of {5 * STEPS_PER_EPOCH} steps, not shorter'),
    (['--warmup_steps=10', '--warmup_epochs=0.1'], '--warmup_epochs and --warmup_steps were both given'),
    (['--schedule=piecewise_constant', '--boundaries=10,5', '--values=1,2,3'],
     '--boundaries: boundaries must be strictly increasing, got [10, 5]'),
    (['--schedule=piecewise_constant', '--boundaries=10', '--values=0.1'],
     '--values: values must be a list of len(boundaries) + 1 = 2 rates, got [0.1]'),
    (['--schedule=cosine_restarts', '--cycle_multiplier=0.5'],
     '--cycle_multiplier: cycle_multiplier must be a finite number >= 1, got 0.5'),
    (['--schedule=one_cycle', '--warmup_fraction=1.5'],
     '--warmup_fraction: warmup_fraction must be a finite number in [0, 1), got 1.5'),
    (['--schedule=cosine_restart'], 'flag --schedule=cosine_restart: value should be one of'),
    (['--on_nonfinite=ignore'], 'flag --on_nonfinite=ignore: value should be one of <stop|skip>'),
    (['--dataset=fashion_mnits'], '--dataset=fashion_mnits is not a tensorflow-datasets name'),
    (['--eval_split=tset'], "--train_split/--eval_split='tset'"),
    (['--no_such_flag=1'], "Unknown command line flag 'no_such_flag'"),
    (['--flagfile=configs/nonexistent.flags'], '--flagfile: cannot open'),
    (['stray'], 'unexpected arguments: stray (flags are --name=value)'),
]


# One process of each kind of error: absl's parser, a flagfile, stray arguments, Config, a schedule parameter,
# a tfds name, a split; the whole table runs in one process through the same entry point.
SEPARATE = ('--batch_size=eight', '--flagfile=configs/nonexistent.flags', 'stray', '--epochs=0',
            '--initial_lr=nan', '--dataset=fashion_mnits', '--eval_split=tset')


@pytest.fixture(scope='module')
def bad_runs(base):
    """Every BAD case, each with a model_dir of its own: [(status, stdout, stderr, model_dir)]."""
    model_dirs = [base / 'bad' / str(index) for index in range(len(BAD))]
    cases = [[*common(base / 'data', model_dir), *args] for model_dir, (args, _) in zip(model_dirs, BAD)]
    return [(*result, model_dir) for result, model_dir in zip(main_in_process(cases), model_dirs)]


@pytest.mark.parametrize('index', range(len(BAD)), ids=[' '.join(args) for args, _ in BAD])
def test_bad_flag_one_line_status_2_nothing_written(bad_runs, index):
    status, out, err, model_dir = bad_runs[index]
    assert status == 2, err[-2000:]
    line = error_line(err)
    assert BAD[index][1] in line, line
    assert err.rstrip().endswith(line) and out == ''
    assert not model_dir.exists()


def test_bad_flags_end_the_same_as_separate_processes(base, bad_runs):
    indices = [i for i, (args, _) in enumerate(BAD) if args[0] in SEPARATE]
    assert len(indices) == len(SEPARATE)

    def run(index):
        model_dir = base / 'bad-separate' / str(index)
        status, out, err = finish(run_main(*common(base / 'data', model_dir), *BAD[index][0], wait=False))
        return status, out, error_line(err), err.rstrip().endswith(error_line(err)), model_dir.exists()
    with futures.ThreadPoolExecutor(4) as pool:
        separate = list(pool.map(run, indices))
    for index, (status, out, line, last, written) in zip(indices, separate):
        in_process = bad_runs[index]
        assert (status, out, line, last, written) == (in_process[0], in_process[1], error_line(in_process[2]),
                                                      True, False), BAD[index][0]


def test_the_default_relative_model_dir_resumes_without_a_false_warning(tmp_path, monkeypatch):
    # The CLI's default --model_dir is relative (runs/<dataset>-<model>-<schedule>): run it twice from a folder.
    (tmp_path / 'data').mkdir()
    args = [sys.executable, '-m', 'trainer.main', '--data_dir=data', '--train_split=train[:64]', '--eval_split=',
            '--model=mlp', '--batch_size=16', '--train_steps=8', '--checkpoint_steps=4']
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=REPO)
    first = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    model_dir = tmp_path / 'runs' / 'fashion_mnist-mlp-cosine_restarts'
    assert tf.train.latest_checkpoint(str(model_dir)).endswith('ckpt-8')
    # A run stopped after its checkpoint of step 4: the latest checkpoint path in the state file is relative.
    tf.compat.v1.train.update_checkpoint_state(str(model_dir), 'ckpt-4', all_model_checkpoint_paths=['ckpt-4'])
    for name in glob.glob(str(model_dir / 'ckpt-8.*')):
        os.remove(name)
    with monkeypatch.context() as inside:
        inside.chdir(tmp_path)  # each checkpoint once, under the path the state file and the folder agree on
        assert recovery._checkpoints('runs/fashion_mnist-mlp-cosine_restarts') == [
            'runs/fashion_mnist-mlp-cosine_restarts/ckpt-4']
    again = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert 'unreadable' not in again.stderr and 'skipped' not in again.stderr, again.stderr[-2000:]
    assert 'resuming runs/fashion_mnist-mlp-cosine_restarts at step 4/8' in again.stdout
    assert tf.train.latest_checkpoint(str(model_dir)).endswith('ckpt-8')
