"""Checkpoints that survive faults: restore the newest readable one, save without losing the previous one.

Restore: every checkpoint of the model_dir (those the `checkpoint` state file lists and any `ckpt-N.index`
on disk, newest first) is read in full before it is restored (TensorFlow checks each tensor's crc32c), so a
truncated or corrupted latest checkpoint is reported and the one before it used. If checkpoints exist but
none is readable, the run stops instead of starting over on top of the user's run.

Save: tf.train.CheckpointManager writes `ckpt-N.*` beside the older checkpoints and replaces the state file
atomically, so a failed write (full disk, read-only folder) leaves the previous checkpoint the latest; the
partial `ckpt-N` files are removed and the run stops with one line.
"""
import glob
import os
import re
import shutil

import tensorflow as tf
from absl import logging

from trainer import faults

_NUMBER = re.compile(r'ckpt-(\d+)$')


def restore(checkpoint, model_dir):
    """Restores the newest readable checkpoint of model_dir into `checkpoint`; returns its path, or None if
    there is none. Raises faults.Stop when checkpoints exist but none can be read."""
    candidates = _checkpoints(model_dir)
    problems = []
    for path in candidates:
        try:
            _read_all(path)
            checkpoint.restore(path).assert_existing_objects_matched()
        # TensorFlow's reader raises OpErrors, but IndexError for a short read (a truncated data file).
        except (tf.errors.OpError, OSError, ValueError, AssertionError, IndexError, RuntimeError) as e:
            problems.append(f'{os.path.basename(path)}: {_reason(e)}')
            continue
        if problems:
            logging.warning('unreadable checkpoint(s) skipped (%s); resuming from %s', '; '.join(problems), path)
        return path
    if problems:
        raise faults.Stop(f'--model_dir={model_dir} has checkpoints but none is readable ({"; ".join(problems)}); '
                          'not starting over on top of that run: restore a checkpoint, or move the folder away '
                          'or use another --model_dir to start a new run')
    return None


def latest(model_dir):
    """Path of the newest checkpoint the state file names, or 'none'."""
    return tf.train.latest_checkpoint(model_dir) or 'none'


def save(manager, step):
    """manager.save(checkpoint_number=step); on a write error, removes the partial files and raises
    faults.Stop naming the checkpoint that is still the latest."""
    try:
        return manager.save(checkpoint_number=step)
    except (OSError, tf.errors.OpError) as e:
        prefix = os.path.join(manager.directory, f'ckpt-{step}')
        for path in glob.glob(glob.escape(prefix) + '.*') + glob.glob(glob.escape(prefix) + '_temp*'):
            _remove(path)
        raise faults.Stop(write_error(manager.directory, f'the checkpoint of step {step}', e)) from None


def write_error(model_dir, what, error):
    """The line for a failed write of `what` into model_dir."""
    return (f'cannot write {what} into --model_dir={model_dir} ({_reason(error)}); the latest checkpoint is '
            f'still {latest(model_dir)}: free space or fix the folder, then rerun the same command to resume')


def _checkpoints(model_dir):
    """Checkpoint prefixes in model_dir, newest (highest number) first."""
    # get_checkpoint_state joins the state file's relative paths to model_dir itself.
    state = tf.train.get_checkpoint_state(model_dir)
    listed = list(state.all_model_checkpoint_paths) if state else []
    if state and state.model_checkpoint_path not in listed:
        listed.append(state.model_checkpoint_path)
    on_disk = [p[:-len('.index')] for p in glob.glob(os.path.join(glob.escape(model_dir), 'ckpt-*.index'))]
    found = {os.path.normpath(p) for p in listed + on_disk if _NUMBER.search(p)}
    return sorted(found, key=lambda p: int(_NUMBER.search(p).group(1)), reverse=True)


def _read_all(path):
    reader = tf.train.load_checkpoint(path)
    for name in reader.get_variable_to_shape_map():
        reader.get_tensor(name)


def _reason(error):
    if isinstance(error, OSError):
        return error.strerror or str(error)
    text = getattr(error, 'message', None) or str(error)
    text = re.sub(r'\{\{function_node [^}]*\}\}', '', text)  # TensorFlow's name of the failing op
    return ' '.join(text.split())


def _remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.exists(path):
        os.remove(path)
