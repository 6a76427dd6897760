"""Helpers shared by the trainer tests (no tests here): tiny datasets, event files, running trainer.main."""
import glob
import os
import subprocess
import sys

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


def scalars(run_dir):
    """{tag: [(step, value), ...]} of every scalar summary in the event files of `run_dir`, in file order."""
    series = {}
    for path in sorted(glob.glob(os.path.join(run_dir, 'events.out.tfevents.*'))):
        for event in event_file_loader.EventFileLoader(path).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == 'scalars':
                    series.setdefault(value.tag, []).append(
                        (event.step, float(tf.make_ndarray(value.tensor))))
    return series


def tags(run_dir):
    """{tag: plugin name} of every summary in the event files of `run_dir`."""
    found = {}
    for path in glob.glob(os.path.join(run_dir, 'events.out.tfevents.*')):
        for event in event_file_loader.EventFileLoader(path).Load():
            for value in event.summary.value:
                found[value.tag] = value.metadata.plugin_data.plugin_name
    return found


def run_main(*args, wait=True):
    """Runs `python -m trainer.main args...` from the repo root; returns the CompletedProcess (or Popen)."""
    command = [sys.executable, '-m', 'trainer.main', *args]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
    if not wait:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def checkpoint_values(model_dir):
    """{variable name: value} of the latest checkpoint in model_dir (the save counter left out)."""
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(model_dir))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if not name.startswith('save_counter') and not name.startswith('_CHECKPOINTABLE_OBJECT_GRAPH')}
