"""The outer loop: restore, train in loop calls, evaluate each epoch, checkpoint, export.

A run is resumable at any checkpoint because everything is a function of the global step: the learning
rate (the schedule), the batch (trainer.data.TrainBatches, indexed by the step) and the epoch. A checkpoint
therefore holds just the model, the optimizer and the step.
"""
import contextlib
import dataclasses
import os
import time

import keras
import tensorflow as tf
from absl import logging

from trainer import (data, distribute, export, faults, lock, loop, optimizers, progress, recovery,
                     rundir, signals, summaries)


@dataclasses.dataclass(frozen=True)
class Result:
    """How a run ended.

    evaluations: {'step', 'loss', 'accuracy'} of every evaluation of the run, resumed parts included;
    seconds: wall time of this call; examples_per_sec: training throughput after the first (tracing) loop call.
    """
    model_dir: str
    step: int
    evaluations: tuple
    seconds: float
    examples_per_sec: float
    export_dir: str
    model: keras.Model
    already_finished: bool = False

    @property
    def final_accuracy(self):
        return self.evaluations[-1]['accuracy'] if self.evaluations else None

    @property
    def best_accuracy(self):
        return max(e['accuracy'] for e in self.evaluations) if self.evaluations else None


def run(experiment, model_fn, interactive=None, strategy=None):
    """Trains `experiment` (a trainer.experiment.Experiment) to its last step; returns a Result.

    model_fn(info) -> keras.Model is called under the strategy's scope. Resumes from the latest checkpoint
    in the model_dir; a run already at its last step is not trained again.
    strategy: from trainer.distribute.create (default: TensorFlow's default strategy). A non-chief worker
    of a cluster reads checkpoints from model_dir but writes everything to a temporary folder.
    """
    strategy = strategy or distribute.create()
    # One process per folder it writes (lock.hold), taken before anything is written there.
    with distribute.worker_dir(strategy, experiment.config.model_dir) as folder, lock.hold(folder):
        return _run(experiment, model_fn, interactive, strategy, folder)


def _run(experiment, model_fn, interactive, strategy, folder):
    restore_dir = experiment.config.model_dir
    if folder != restore_dir:
        experiment = dataclasses.replace(experiment,
                                         config=dataclasses.replace(experiment.config, model_dir=folder))
    config = experiment.config
    model_dir = config.model_dir
    rundir.check_and_create(model_dir, config.as_dict())
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.seed)

    previous_policy = keras.mixed_precision.dtype_policy()
    if config.mixed_precision:
        keras.mixed_precision.set_dtype_policy('mixed_float16' if distribute.has_gpu() else 'mixed_bfloat16')
    try:
        with strategy.scope():
            model = model_fn(experiment.info)
            step = tf.Variable(0, dtype=tf.int64, trainable=False, name='global_step',
                               aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
            optimizer = optimizers.build(
                config.optimizer, lambda: experiment.schedule(step), momentum=config.momentum,
                weight_decay=config.weight_decay, loss_scale=config.mixed_precision and distribute.has_gpu(),
                ema_momentum=config.ema_momentum)
            optimizer.build(model.trainable_variables)
    finally:
        keras.mixed_precision.set_dtype_policy(previous_policy)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step)
    manager = tf.train.CheckpointManager(checkpoint, model_dir, max_to_keep=config.keep_checkpoints)
    recovery.restore(checkpoint, restore_dir)
    training = _Run(experiment, strategy, model, optimizer, step, manager, interactive)
    if strategy is not tf.distribute.get_strategy():
        training.progress.summary([distribute.describe(strategy, config.batch_size)])
    # In a cluster, a SIGTERM to any worker makes all of them checkpoint at the same loop call and exit.
    with distribute.preemption(strategy, step, lambda: training._save(int(step.numpy())),
                               training.progress.summary) as training.call, \
            signals.Interrupts(() if distribute.cluster_resolver(strategy) else signals.ALL) as training.interrupts:
        return training.train()


class _Clock:
    """Training time and steps, leaving out the first loop call (tracing) unless it is the only one."""

    def __init__(self):
        self.first = None
        self.seconds, self.steps = 0.0, 0
        self.epoch_seconds, self.epoch_steps = 0.0, 0

    def add(self, seconds, steps):
        if self.first is None:
            self.first = (seconds, steps)
        else:
            self.seconds, self.steps = self.seconds + seconds, self.steps + steps
        self.epoch_seconds, self.epoch_steps = self.epoch_seconds + seconds, self.epoch_steps + steps

    def end_epoch(self):
        """Steps per second of the epoch just ended."""
        rate = self.epoch_steps / self.epoch_seconds
        self.epoch_seconds, self.epoch_steps = 0.0, 0
        return rate

    def steps_per_sec(self):
        seconds, steps = (self.seconds, self.steps) if self.steps else self.first
        return steps / seconds


class _Run:
    def __init__(self, experiment, strategy, model, optimizer, step, manager, interactive):
        self.experiment = experiment
        self.config = experiment.config
        self.strategy = strategy
        self.model = model
        self.optimizer = optimizer
        self.step = step
        self.manager = manager
        self.start = int(step.numpy())
        self.evaluations = rundir.evaluations(self.config.model_dir, self.start)
        self.progress = progress.Progress(experiment.steps_per_epoch, experiment.total_steps, interactive)
        self.export_dir = os.path.join(self.config.model_dir, 'export')

    def train(self):
        began = time.perf_counter()
        exp, config = self.experiment, self.config
        if self.start >= exp.total_steps:
            return self._already_finished()
        self.writers = summaries.Writers(config.model_dir)
        batches = data.TrainBatches(exp.train_examples, exp.num_train, config.batch_size, config.seed,
                                    augment=config.augment, cutout_size=config.cutout_size)
        self.loop = loop.Loop(self.model, self.optimizer, self.strategy, self.step, self.writers.train,
                              batches, jit_compile=config.jit_compile,
                              on_nonfinite=config.on_nonfinite)
        self._skipped, self._saved = 0, self.start
        self._call_steps = (self.start, self.start)  # the steps of the last loop call, for error lines
        summaries.mark_start(self.writers, self.start)
        if self.start == 0:
            summaries.describe_run(self.writers, config.as_dict(), exp.hparams(), exp.schedule, exp.total_steps,
                                   os.path.basename(os.path.normpath(config.model_dir)))
        else:
            self.progress.summary([f'resuming {config.model_dir} at step {self.start}/{exp.total_steps} '
                                   f'(epoch {self.start // exp.steps_per_epoch + 1})'])
        evaluation = None
        if exp.eval_examples is not None:
            evaluation = self.strategy.experimental_distribute_dataset(
                data.eval_batches(exp.eval_examples, config.batch_size))
        clock, current = _Clock(), self.start
        while current < exp.total_steps:
            current, train_values = self._loop_call(current, clock)
            epoch_end = current % exp.steps_per_epoch == 0 or current == exp.total_steps
            if epoch_end:
                self.progress.epoch_end(current, *train_values, *self._evaluate(evaluation, current),
                                        clock.end_epoch())
            if epoch_end or (config.checkpoint_steps and current % config.checkpoint_steps == 0):
                began_save = time.perf_counter()
                self._save(current)
                clock.add(time.perf_counter() - began_save, 0)  # saving is part of the training time
            if self.interrupts.requested and current < exp.total_steps:
                self._interrupted(current)
        self._export()
        self.writers.close()
        result = self._result(current, time.perf_counter() - began, clock.steps_per_sec() * config.batch_size)
        self.progress.summary(self._summary_lines(result))
        return result

    def _loop_call(self, current, clock):
        """One call of the compiled loop from step `current`; returns the new step and (loss, accuracy, rate)."""
        num_steps = self._next_stop(current) - current
        self.progress.begin(current)
        began = time.perf_counter()
        self._call_steps = (current, current + num_steps)
        values = tuple(float(v) for v in self.call(self.loop.train, tf.constant(num_steps, tf.int64)))
        self._check_nonfinite()
        seconds = time.perf_counter() - began
        clock.add(seconds, num_steps)
        current += num_steps
        summaries.throughput(self.writers, current, num_steps / seconds,
                             num_steps * self.config.batch_size / seconds)
        self.progress.step(current, *values)
        return current, values

    def _next_stop(self, current):
        """The next step at which the loop call must return: epoch end, checkpoint, the run's end."""
        stops = [current + self.config.steps_per_loop, self.experiment.total_steps,
                 (current // self.experiment.steps_per_epoch + 1) * self.experiment.steps_per_epoch]
        if self.config.checkpoint_steps:
            stops.append((current // self.config.checkpoint_steps + 1) * self.config.checkpoint_steps)
        return min(stops)

    def _evaluate(self, evaluation, current):
        if evaluation is None:
            return None, None
        with self._averaged_weights():
            loss, accuracy = (float(v) for v in self.loop.evaluate(iter(evaluation)))
        summaries.evaluation(self.writers, current, loss, accuracy)
        self.evaluations.append({'step': current, 'loss': loss, 'accuracy': accuracy})
        rundir.save_evaluations(self.config.model_dir, self.evaluations)
        return loss, accuracy

    @contextlib.contextmanager
    def _averaged_weights(self):
        """With --ema_momentum: the model holds the moving average inside, its trained weights after."""
        if self.config.ema_momentum is None:
            yield
            return
        trained = [v.numpy() for v in self.model.trainable_variables]
        self.optimizer.finalize_variable_values(self.model.trainable_variables)
        try:
            yield
        finally:
            for variable, value in zip(self.model.trainable_variables, trained):
                variable.assign(value)

    def _export(self):
        # The weights evaluated are the weights exported (with --ema_momentum, the average; as Keras's fit
        # leaves the model). The checkpoints keep the trained weights and the average in the optimizer.
        self.optimizer.finalize_variable_values(self.model.trainable_variables)
        export.save(self.model, self.experiment.info.image_shape, self.export_dir)

    def _save(self, current):
        # With --on_nonfinite=stop the bad step's update was applied: a save between the loop call and its
        # check (a preemption) must stop instead.
        self._check_nonfinite()
        # Summaries first: a run resumed from this checkpoint must find every step before it logged.
        try:
            self.writers.flush()
        except (OSError, tf.errors.OpError) as e:
            raise faults.Stop(recovery.write_error(self.manager.directory, 'the summaries', e)) from None
        recovery.save(self.manager, current)
        self._saved = current

    def _check_nonfinite(self):
        """After a loop call and before a save: stop at non-finite weights, and at a new non-finite step under
        --on_nonfinite=stop; under skip, warn at new skipped steps."""
        skipped, last = self.loop.guard.counts()
        if skipped != self._skipped:
            previous, self._skipped = self._skipped, skipped
            if self.loop.guard.mode == 'stop':
                self.writers.flush()
                raise faults.Stop(f'non-finite loss at step {last}: the run stopped without saving it; the last '
                                  f'good checkpoint is {recovery.latest(self.manager.directory)}; lower the '
                                  'learning rate (in a new --model_dir), or rerun with --on_nonfinite=skip to '
                                  'skip such steps')
            if previous == 0 or len(str(skipped)) > len(str(previous)):  # the 1st, 10th, 100th, ...: a short log
                logging.warning('skipped %d step(s) with a non-finite loss or gradient so far (the last at step '
                                '%d)', skipped, last)
        if not self.loop.guard.state_finite():
            first, end = self._call_steps
            self.writers.flush()
            raise faults.Stop(f'non-finite weights at step {end}: not saved; the last good checkpoint is '
                              f'{recovery.latest(self.manager.directory)}; a step of {first}..{end - 1} with a '
                              'finite loss made them so (a non-finite gradient, or an update that overflowed): '
                              'lower the learning rate (in a new --model_dir)')

    def _interrupted(self, current):
        """SIGTERM or Ctrl-C: checkpoint the current step (summaries flushed with it) and stop."""
        if self._saved != current:
            self._save(current)
        self.writers.close()
        raise faults.Interrupted(self.interrupts.stop_message(current, self.manager.latest_checkpoint),
                                 self.interrupts.exit_status)

    def _already_finished(self):
        self.optimizer.finalize_variable_values(self.model.trainable_variables)  # the model a finished run returns
        if not os.path.exists(self.export_dir):
            self._export()
        result = self._result(self.start, 0.0, 0.0, already_finished=True)
        self.progress.summary([f'{self.config.model_dir} already finished at step {self.start}; nothing to '
                               'do (use another --model_dir for a new run)'] + self._summary_lines(result))
        return result

    def _result(self, current, seconds, examples_per_sec, already_finished=False):
        return Result(model_dir=self.config.model_dir, step=current, evaluations=tuple(self.evaluations),
                      seconds=seconds, examples_per_sec=examples_per_sec, export_dir=self.export_dir,
                      model=self.model, already_finished=already_finished)

    def _summary_lines(self, result):
        lines = []
        if result.evaluations:
            best = max(result.evaluations, key=lambda e: e['accuracy'])
            lines.append(f'eval accuracy: final {result.final_accuracy:.4f}, best {best["accuracy"]:.4f} '
                         f'(step {best["step"]})')
        if not result.already_finished:
            lines.append(f'trained steps {self.start}..{result.step} in {result.seconds:.1f} s, '
                         f'{result.examples_per_sec:.0f} examples/s in the training loop')
        lines.append(f'checkpoints in {self.config.model_dir}, SavedModel in {self.export_dir}')
        return lines
