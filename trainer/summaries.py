"""TensorBoard output: the layout of a model_dir, the once-per-run summaries, the session of the HParams table.

Runs (folders) and tags; TensorBoard groups cards by the tag's prefix before '/', sorts the groups by name
and opens the first two:
  <model_dir>/train    batch/learning_rate, batch/loss, batch/<metric>   every step, that step's batch
                       (written by trainer.loop); batch/schedule: the planned curve, the
                       run's step marked, at the start and after each epoch; epoch/loss, epoch/<metric>: the
                       mean of the epoch's steps, at its last step; throughput/steps_per_sec and
                       throughput/examples_per_sec per loop call; flags (text)
  <model_dir>/eval     epoch/loss, epoch/<metric> after each evaluation: on the cards of the training means
  <model_dir>/hparams  the HParams session: its hyperparameters, result/<name> (the last evaluation's) and
                       result/best_<name> (the best evaluation's, for the names with a direction), its status
No summary goes to <model_dir> itself, so no run without scalars is listed.

The names follow Keras's TensorBoard callback (batch_loss, epoch_loss), with '/' so that TensorBoard
groups them: 'batch' (the per-step values and the learning rate) and 'epoch' (train means and eval) open
first; 'result' and 'throughput' stay closed.

HParams: no experiment config is written, so TensorBoard infers the table from every session in the logdir:
the hyperparameters that differ between runs come first, and the first five are shown. A session's summary
metadata is read from the first event of its tag, so `<model_dir>/hparams` is rewritten whole each time
(a new event file, then the older ones removed) and a resumed run's final status replaces the earlier one.
"""
import glob
import os
import time

import tensorflow as tf
from absl import logging
from tensorboard.plugins.hparams import api as hp
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import summary as hparams_summary
# tf.summary has no public way to write an Event that is not a Summary (here a SessionLog); this is the op
# tf.contrib.summary.import_event exposed.
from tensorflow.python.ops.summary_ops_v2 import import_event

BATCH, EPOCH, RESULT, THROUGHPUT = 'batch', 'epoch', 'result', 'throughput'
# TensorBoard's statuses; it has none for "interrupted", which a rerun resumes: shown as Unknown until then.
STATUS = {'success': api_pb2.STATUS_SUCCESS, 'failure': api_pb2.STATUS_FAILURE,
          'interrupted': api_pb2.STATUS_UNKNOWN}


class Writers:
    """The summary writers of a model_dir's train and eval runs."""

    def __init__(self, model_dir):
        # Three events a step: at the default queue of 10 the writer would flush to the file every few steps
        # inside the compiled loop; the loop's `as_default` block flushes it once, as each call ends.
        self.train = tf.summary.create_file_writer(os.path.join(model_dir, 'train'), max_queue=1000)
        self.eval = tf.summary.create_file_writer(os.path.join(model_dir, 'eval'))

    def flush(self):
        for writer in (self.train, self.eval):
            writer.flush()

    def close(self):
        for writer in (self.train, self.eval):
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
    for writer, at in ((writers.train, step), (writers.eval, step + 1)):
        event = tf.compat.v1.Event(wall_time=time.time(), step=at, session_log=start)
        with writer.as_default():
            import_event(tf.constant(event.SerializeToString()))


def flags_table(settings, schedule_steps):
    """Markdown rows of the settings that have a value, the schedule's parameters as resolved in steps."""
    rows = [(name, value) for name, value in sorted(settings.items())
            if value is not None and not name.startswith('schedule.')]
    rows += sorted((f'schedule.{name}', value) for name, value in schedule_steps.items() if value is not None)
    return 'setting | value\n---|---\n' + '\n'.join(f'`{name}` | `{value}`' for name, value in rows)


def describe_run(writers, settings, schedule_steps):
    """The run's settings as a text table, once, at step 0."""
    with writers.train.as_default():
        tf.summary.text('flags', flags_table(settings, schedule_steps), step=0)


def schedule_card(writers, schedule, total_steps, title, step):
    """The planned learning-rate curve with `step` marked, at `step` (TensorBoard shows the newest)."""
    try:
        from schedules import plot  # matplotlib is imported only here, and only when installed
    except ImportError:
        if step == 0:
            logging.warning('matplotlib is not installed: no learning_rate_schedule image in TensorBoard '
                            "(pip install 'stepwise[plot]')")
        return
    image = plot.card(schedule, total_steps, title, mark=step)
    with writers.train.as_default():
        tf.summary.image(f'{BATCH}/schedule', image[None], step=step)


def throughput(writers, step, steps_per_sec, examples_per_sec):
    with writers.train.as_default():
        tf.summary.scalar(f'{THROUGHPUT}/steps_per_sec', steps_per_sec, step=step)
        tf.summary.scalar(f'{THROUGHPUT}/examples_per_sec', examples_per_sec, step=step)


def epoch_means(writers, step, means):
    """The training {name: mean over the epoch's steps}, at the epoch's last step."""
    with writers.train.as_default():
        for name, value in means.items():
            tf.summary.scalar(f'{EPOCH}/{name}', value, step=step)


def evaluation(writers, step, values):
    """The evaluation's {name: value} (loss and metrics) at `step`, on the cards of the training means."""
    with writers.eval.as_default():
        for name, value in values.items():
            tf.summary.scalar(f'{EPOCH}/{name}', value, step=step)


def session(model_dir, label, hparams, evaluations, directions, status=None):
    """Rewrites <model_dir>/hparams: the session `label` with `hparams`, the last and the best evaluations
    ([{'step', name: value}]; best by `directions`, {name: 'up'|'down'}) and, if given, its end `status`
    (a key of STATUS)."""
    folder = os.path.join(model_dir, 'hparams')
    older = glob.glob(os.path.join(glob.escape(folder), 'events.out.tfevents.*'))
    writer = tf.summary.create_file_writer(folder)
    with writer.as_default():
        hp.hparams(hparams, trial_id=label, start_time_secs=_started(model_dir))
        if evaluations:
            last = evaluations[-1]
            for name, value in last.items():
                if name != 'step':
                    tf.summary.scalar(f'{RESULT}/{name}', value, step=last['step'])
            for name, direction in sorted(directions.items()):
                if name in last:
                    pick = max if direction == 'up' else min
                    best = pick(evaluations, key=lambda e: e[name])
                    tf.summary.scalar(f'{RESULT}/best_{name}', best[name], step=best['step'])
        if status is not None:
            end = hparams_summary.session_end_pb(STATUS[status])
            tf.summary.experimental.write_raw_pb(end.SerializeToString(), step=0)
    writer.close()
    for path in older:
        os.remove(path)


def _started(model_dir):
    """When the run began: the time in the name of its first training event file (tf.summary names them
    events.out.tfevents.<seconds>.<host>...), or now."""
    times = []
    for path in glob.glob(os.path.join(glob.escape(model_dir), 'train', 'events.out.tfevents.*')):
        try:
            times.append(float(os.path.basename(path).split('.')[3]))
        except (IndexError, ValueError):
            continue
    return min(times, default=time.time())
