"""Helpers shared by the trainer tests (no tests here): tiny datasets, event files, running trainer.main,
a TensorBoard server."""
import contextlib
import glob
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import tensorflow as tf
from tensorboard.backend.event_processing import event_file_loader

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_dataset(num_examples, seed, shape=(8, 8, 1)):
    """Unbatched (uint8 image, int64 label): label 1 when the image is brighter than average, so it is learnable."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(num_examples, *shape), dtype=np.uint8)
    labels = (images.reshape(num_examples, -1).mean(axis=1) > 127.5).astype(np.int64)
    return tf.data.Dataset.from_tensor_slices((images, labels))


def scalars(run_dir, group=None):
    """{tag: [(step, value), ...]} of every scalar summary in the event files of `run_dir`, in file order;
    with `group` ('batch', 'epoch'), only the tags `group/...`, named without the prefix."""
    if group is not None:
        prefix = group + '/'
        return {tag[len(prefix):]: values for tag, values in scalars(run_dir).items() if tag.startswith(prefix)}
    series = {}
    for path in sorted(glob.glob(os.path.join(run_dir, 'events.out.tfevents.*'))):
        for event in event_file_loader.EventFileLoader(path).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == 'scalars':
                    series.setdefault(value.tag, []).append(
                        (event.step, float(tf.make_ndarray(value.tensor))))
    return series


def session_status(model_dir):
    """(number of event files in <model_dir>/hparams, the HParams session's end status name or None)."""
    from tensorboard.plugins.hparams import api_pb2, metadata
    files = glob.glob(os.path.join(model_dir, 'hparams', 'events.out.tfevents.*'))
    status = None
    for path in files:
        for event in event_file_loader.EventFileLoader(path).Load():
            for value in event.summary.value:
                if value.tag == metadata.SESSION_END_INFO_TAG:
                    end = metadata.parse_session_end_info_plugin_data(value.metadata.plugin_data.content)
                    status = api_pb2.Status.Name(end.status)
    return len(files), status


def tags(run_dir):
    """{tag: plugin name} of every summary in the event files of `run_dir`."""
    found = {}
    for path in glob.glob(os.path.join(run_dir, 'events.out.tfevents.*')):
        for event in event_file_loader.EventFileLoader(path).Load():
            for value in event.summary.value:
                found[value.tag] = value.metadata.plugin_data.plugin_name
    return found


def scratch(tmp_path_factory, name):
    """A fresh module directory with an empty data/ (tfds finds nothing prepared: Debian's files are read)."""
    base = tmp_path_factory.mktemp(name)
    (base / 'data').mkdir()
    return base


def run_main(*args, wait=True, env=None, timeout=300):
    """Runs `python -m trainer.main args...` from the repo root with extra environment variables `env`;
    returns the CompletedProcess (or the Popen when not `wait`)."""
    command = [sys.executable, '-m', 'trainer.main', *args]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', **(env or {}))
    if not wait:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def finished(*args, env=None):
    """run_main, which must end with status 0; the CompletedProcess."""
    done = run_main(*args, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def main_in_process(cases):
    """[(exit status, stdout, stderr)] of trainer.main's entry point run on each argument list in `cases`,
    all in one process (tests/main_in_process.py): TensorFlow starts once, not once per case."""
    done = subprocess.run([sys.executable, os.path.join(REPO, 'tests', 'main_in_process.py')], cwd=REPO,
                          input=json.dumps([[str(arg) for arg in args] for args in cases]), capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=REPO))
    assert done.returncode == 0, done.stderr[-3000:]
    return [tuple(result) for result in json.loads(done.stdout)]


def checkpoint_values(model_dir):
    """{variable name: value} of the latest checkpoint in model_dir (the save counter left out)."""
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(model_dir))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if not name.startswith('save_counter') and not name.startswith('_CHECKPOINTABLE_OBJECT_GRAPH')}


def get_json(port, path, **query):
    """The JSON a local HTTP server (TensorBoard) answers to GET path?query."""
    url = f'http://127.0.0.1:{port}{path}?{urllib.parse.urlencode(query)}'
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


@contextlib.contextmanager
def tensorboard(logdir, load_fast, serves, wait=90):
    """A TensorBoard server on a free loopback port; yields the port once `serves(tags)` is true of the
    scalar tags it answers (polled for at most `wait` seconds), kills the server on exit."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, '-m', 'tensorboard.main', f'--logdir={logdir}', '--host=127.0.0.1', f'--port={port}',
         f'--load_fast={str(load_fast).lower()}', '--reload_interval=1'],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                if serves(get_json(port, '/data/plugin/scalars/tags')):
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert process.poll() is None, process.stderr.read()[-2000:]
            assert time.monotonic() < deadline, f'TensorBoard did not serve the runs within {wait} s'
            time.sleep(0.5)
        yield port
    finally:
        process.kill()
        process.wait(timeout=30)
