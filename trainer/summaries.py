"""TensorBoard output outside the compiled loop: run description, throughput, evaluation.

Layout of a model_dir (one TensorBoard run per folder):
  <model_dir>        flags (text), hparams (hparams plugin)
  <model_dir>/train  learning_rate, loss and every metric of the model every step (written by trainer.loop);
                     steps_per_sec, examples_per_sec per loop call; learning_rate_schedule (image, step 0)
  <model_dir>/eval   loss and every metric after each evaluation
"""
import os
import time

import tensorflow as tf
from absl import logging
from tensorboard.plugins.hparams import api as hp
# tf.summary has no public way to write an Event that is not a Summary (here a SessionLog); this is the op
# tf.contrib.summary.import_event exposed.
from tensorflow.python.ops.summary_ops_v2 import import_event



class Writers:
    """The three summary writers of a model_dir."""

    def __init__(self, model_dir):
        self.root = tf.summary.create_file_writer(model_dir)
        # Three events a step: at the default queue of 10 the writer would flush to the file every few steps
        # inside the compiled loop; the loop's `as_default` block flushes it once, as each call ends.
        self.train = tf.summary.create_file_writer(os.path.join(model_dir, 'train'), max_queue=1000)
        self.eval = tf.summary.create_file_writer(os.path.join(model_dir, 'eval'))

    def flush(self):
        for writer in (self.root, self.train, self.eval):
            writer.flush()

    def close(self):
        for writer in (self.root, self.train, self.eval):
            writer.close()


def mark_start(writers, step):
    """Marks the (re)start of training at global step `step` in each event log, before anything is logged.

    A run resumed from the checkpoint of step S logs the steps from S on again, after the values a killed
    process logged past its last checkpoint. TensorBoard's event multiplexer purges, at every SessionLog.START
    of a run folder after its first, all values at steps >= the START's step (event files of format
    brain.Event:2, which tf.summary writes, get no other purging). Its Rust data server (the default
    `--load_fast=auto`) ignores SessionLog and instead drops, per tag, the values at steps >= a step logged
    again. Either way each step then shows one value. `eval` is marked at S + 1: its value at S was logged
    before the checkpoint of S was saved and is not logged again.
    """
    start = tf.compat.v1.SessionLog(status=tf.compat.v1.SessionLog.START)
    for writer, at in ((writers.root, step), (writers.train, step), (writers.eval, step + 1)):
        event = tf.compat.v1.Event(wall_time=time.time(), step=at, session_log=start)
        with writer.as_default():
            import_event(tf.constant(event.SerializeToString()))


def describe_run(writers, flag_values, hparams, schedule, total_steps, label, metric_names):
    """Writes the once-per-run summaries: flags as text, hparams (with the last evaluation's loss and
    `metric_names`), and the planned learning-rate curve."""
    rows = '\n'.join(f'| `{name}` | `{value}` |' for name, value in sorted(flag_values.items()))
    with writers.root.as_default():
        tf.summary.text('flags', f'| setting | value |\n|---|---|\n{rows}', step=0)
        metrics = [hp.Metric(name, group='eval', display_name=f'eval {name}') for name in metric_names]
        hp.hparams_config(hparams=[hp.HParam(name) for name in sorted(hparams)], metrics=metrics)
        hp.hparams(hparams, trial_id=label)
    try:
        from schedules import plot  # matplotlib is imported only here, and only when installed
        image = plot.image({label: schedule}, total_steps, title=f'planned learning rate ({total_steps} steps)')
    except ImportError:
        logging.warning('matplotlib is not installed: no learning_rate_schedule image in TensorBoard '
                        "(pip install 'stepwise[plot]')")
        return
    with writers.train.as_default():
        tf.summary.image('learning_rate_schedule', image[None], step=0)


def throughput(writers, step, steps_per_sec, examples_per_sec):
    with writers.train.as_default():
        tf.summary.scalar('steps_per_sec', steps_per_sec, step=step)
        tf.summary.scalar('examples_per_sec', examples_per_sec, step=step)


def evaluation(writers, step, values):
    """The evaluation's {name: value} (loss and metrics, the training scalars' tags) at `step`."""
    with writers.eval.as_default():
        for name, value in values.items():
            tf.summary.scalar(name, value, step=step)
