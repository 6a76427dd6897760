"""The outer loop: restore, train in loop calls, evaluate each epoch, checkpoint, export.

A run is resumable at any checkpoint because everything is a function of the global step: the learning
rate (the schedule), the batch (trainer.data.TrainBatches, indexed by the step) and the epoch. A checkpoint
therefore holds just the model, the optimizer and the step.
"""
import contextlib
import dataclasses
import os
import textwrap
import time

import keras
import tensorflow as tf
from absl import logging

from trainer import (data, distribute, export, faults, lock, loop, optimizers, progress, recovery,
                     rundir, signals, stream, summaries, task)
from trainer.config import ConfigError


@dataclasses.dataclass(frozen=True)
class Result:
    """How a run ended.

    evaluations: {'step', 'loss', metric name: value, ...} of every evaluation of the run, resumed parts
    included; seconds: wall time of this call; examples_per_sec: training throughput after the first
    (tracing) loop call; directions: {name: 'up' or 'down'} of the values whose better side is known.
    """
    model_dir: str
    step: int
    evaluations: tuple
    seconds: float
    examples_per_sec: float
    export_dir: str
    model: keras.Model
    already_finished: bool = False
    directions: dict = dataclasses.field(default_factory=dict)

    @property
    def final(self):
        """The last evaluation ({'step', 'loss', metrics...}), or None."""
        return self.evaluations[-1] if self.evaluations else None

    def best(self, name, mode='auto'):
        """The evaluation with the best `name`: mode 'max', 'min', or 'auto' (the metric's direction)."""
        if not self.evaluations:
            return None
        if mode == 'auto':
            if name not in self.directions:
                raise ValueError(f'which way is better for {name!r} is not known; pass mode="max" or "min"')
            mode = 'max' if self.directions[name] == 'up' else 'min'
        pick = max if mode == 'max' else min
        return pick(self.evaluations, key=lambda e: e[name])


def run(experiment, model_fn, interactive=None, strategy=None, loss=None, metrics=None, optimizer=None):
    """Trains `experiment` (a trainer.experiment.Experiment) to its last step; returns a Result.

    model_fn(info) -> keras.Model is called under the strategy's scope; loss/metrics replace those it was
    compiled with; optimizer: an optimizer instance to copy instead of `config.optimizer`. Everything is built
    and tried on the data before anything is written. Resumes from the latest checkpoint in the model_dir; a
    run already at its last step is not trained again.
    strategy: from trainer.distribute.create (default: TensorFlow's default strategy). A non-chief worker
    of a cluster reads checkpoints from model_dir but writes everything to a temporary folder.
    """
    strategy = strategy or distribute.create()
    built = build(experiment, model_fn, strategy, loss, metrics, optimizer)
    # One process per folder it writes (lock.hold), taken before anything is written there.
    with distribute.worker_dir(strategy, built.experiment.config.model_dir) as folder, lock.hold(folder):
        return _run(built, interactive, strategy, folder)


@dataclasses.dataclass(frozen=True)
class Built:
    experiment: object
    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    step: tf.Variable
    batches: object  # data.TrainBatches (in memory) or stream.StreamBatches


def build(experiment, model_fn, strategy, loss=None, metrics=None, optimizer_instance=None, for_export=True):
    """Everything that can fail on the user's settings, data or model, before anything is written: the examples
    in memory, the model (from the seed's initial weights) compiled with the run's optimizer and tried on two
    examples, its export traced (for_export); the config completed with what identifies the user's loss, metrics
    and data."""
    config = experiment.config
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.seed)
    if experiment.source is not None:
        batches = stream.StreamBatches(experiment.source, config.batch_size, config.seed, experiment.steps_per_epoch,
                                       experiment.shards, experiment.owned_shards, config.shuffle_buffer,
                                       experiment.transform, ram_budget=experiment.memory_budget)
    else:
        try:
            batches = data.TrainBatches(experiment.train_examples, experiment.num_train, config.batch_size,
                                        config.seed, transform=experiment.transform)
        except (ValueError, tf.errors.OpError) as e:  # e.g. a size stated with assert_cardinality that is wrong
            raise data.DataError(f'train_data cannot be read into memory: {type(e).__name__}: '
                                 f'{data.one_line(e)}') from None
    previous_policy = keras.mixed_precision.dtype_policy()
    if config.mixed_precision:
        keras.mixed_precision.set_dtype_policy('mixed_float16' if distribute.has_gpu() else 'mixed_bfloat16')
    loss_scale = config.mixed_precision and distribute.has_gpu()
    try:
        with strategy.scope():
            model = model_fn(experiment.info)
            if not isinstance(model, keras.Model):
                raise ConfigError(f'the model function returned {type(model).__name__}, not a keras.Model')
            step = tf.Variable(0, dtype=tf.int64, trainable=False, name='global_step',
                               aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
            rate = optimizers.RateAtStep(experiment.schedule, step)
            if optimizer_instance is not None:
                optimizer = optimizers.from_instance(optimizer_instance, rate)
                if loss_scale:
                    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            else:
                optimizer = optimizers.build(config.optimizer, rate, momentum=config.momentum,
                                             weight_decay=config.weight_decay, loss_scale=loss_scale,
                                             ema_momentum=config.ema_momentum)
            used_loss, used_metrics = task.compile_for_run(model, optimizer, loss, metrics)
            # Also builds a subclassed model, and the metrics' variables.
            task.check(model, experiment.train_examples, experiment.element_spec, strategy)
            optimizer.build(model.trainable_variables)
    finally:
        keras.mixed_precision.set_dtype_policy(previous_policy)
    try:
        if for_export:
            export.trace(model, experiment.element_spec[0], experiment.serving_outputs)
    except Exception as e:  # noqa: BLE001: the user's model, said in one line
        raise ConfigError(f'the model cannot be exported with a batch of any size: {type(e).__name__}: '
                          f'{data.one_line(e)}') from None
    if experiment.model_given or loss is not None or metrics is not None:
        config = dataclasses.replace(config, loss=task.describe(used_loss), metrics=task.describe(used_metrics))
    if experiment.user_data and experiment.source is None:
        # What the examples are, so that a resume on other data (or on a pipeline that draws at random) is refused.
        config = dataclasses.replace(config, train_data_sha256=batches.sha256())
    return Built(dataclasses.replace(experiment, config=config), model, optimizer, step, batches)


def _run(built, interactive, strategy, folder):
    experiment, model, optimizer, step = built.experiment, built.model, built.optimizer, built.step
    restore_dir = experiment.config.model_dir
    if folder != restore_dir:
        experiment = dataclasses.replace(experiment,
                                         config=dataclasses.replace(experiment.config, model_dir=folder))
    config = experiment.config
    model_dir = config.model_dir
    rundir.check_and_create(model_dir, config.as_dict())
    with strategy.scope():
        # The sums of the current epoch's per-step values and its number of good steps: saved with the step,
        # so that an epoch's mean is exact across a resume within it.
        epoch_totals = tf.Variable(tf.zeros([len(loop.value_names(model)) + 1], tf.float64), trainable=False,
                                   name='epoch_totals', aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step, epoch_totals=epoch_totals)
    manager = tf.train.CheckpointManager(checkpoint, model_dir, max_to_keep=config.keep_checkpoints)
    recovery.restore(checkpoint, restore_dir)
    training = _Run(experiment, strategy, model, optimizer, step, manager, interactive, built.batches,
                    epoch_totals)
    if strategy is not tf.distribute.get_strategy():
        training.progress.summary([distribute.describe(strategy, config.batch_size)])
    # In a cluster, a SIGTERM to any worker makes all of them checkpoint at the same loop call and exit.
    with distribute.preemption(strategy, step, lambda: training._save(int(step.numpy())),
                               training.progress.summary) as training.call, \
            signals.Interrupts(() if distribute.cluster_resolver(strategy) else signals.ALL) as training.interrupts:
        try:
            return training.train()
        except (faults.Interrupted, KeyboardInterrupt, SystemExit):  # SystemExit: a preempted cluster's restart
            training.end_session('interrupted')
            raise
        except BaseException:
            training.end_session('failure')
            raise


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
    def __init__(self, experiment, strategy, model, optimizer, step, manager, interactive, batches, epoch_totals):
        self.experiment = experiment
        self.config = experiment.config
        self.strategy = strategy
        self.model = model
        self.optimizer = optimizer
        self.step = step
        self.manager = manager
        self.batches = batches
        self.start = int(step.numpy())
        self.evaluations = rundir.evaluations(self.config.model_dir, self.start)
        self.progress = progress.Progress(experiment.steps_per_epoch, experiment.total_steps, interactive)
        self.export_dir = os.path.join(self.config.model_dir, 'export')
        self.epoch_totals = epoch_totals
        self.label = os.path.basename(os.path.normpath(self.config.model_dir))
        self.writers = None

    def train(self):
        began = time.perf_counter()
        exp, config = self.experiment, self.config
        if self.start >= exp.total_steps:
            return self._already_finished()
        self.progress.summary([exp.input_line])
        skipped = getattr(self.batches, 'skipped_examples', lambda step: 0)(self.start)
        if skipped:
            self.progress.summary([f'resuming within an epoch of a stream read in order: its first {skipped} '
                                   'examples are read again and dropped'])
        self.batches.start(self.start)
        self.writers = summaries.Writers(config.model_dir)
        self.loop = loop.Loop(self.model, self.optimizer, self.strategy, self.step, self.writers.train,
                              self.batches, jit_compile=config.jit_compile,
                              on_nonfinite=config.on_nonfinite, epoch_totals=self.epoch_totals)
        self._skipped, self._saved = 0, self.start
        self._call_steps = (self.start, self.start)  # the steps of the last loop call, for error lines
        summaries.mark_start(self.writers, self.start)
        if config.optimizer_params:
            self.progress.summary([f'optimizer {config.optimizer.rsplit(".", 1)[-1]}: a copy of the instance given, '
                                   'its learning rate the schedule\'s at the global step'])
        if self.start == 0:
            summaries.describe_run(self.writers, config.as_dict(), self._schedule_steps())
        else:
            self.progress.summary([f'resuming {config.model_dir} at step {self.start}/{exp.total_steps} '
                                   f'(epoch {self.start // exp.steps_per_epoch + 1})'])
        evaluation = None
        if exp.eval_examples is not None:
            evaluation = self.strategy.experimental_distribute_dataset(
                data.eval_batches(exp.eval_examples, config.batch_size, cache=exp.source is None))
        self._session()
        self._schedule_card(self.start)
        if self.start % exp.steps_per_epoch == 0:
            # The means of the epoch that ended here were logged before its checkpoint, and the restart mark
            # hides them (summaries.mark_start): log them again, from the checkpoint's sums.
            self._epoch_means(self.start)
        clock, current = _Clock(), self.start
        while current < exp.total_steps:
            if current % exp.steps_per_epoch == 0:
                self.epoch_totals.assign(tf.zeros(self.epoch_totals.shape, tf.float64))  # a new epoch
            current, train_values = self._loop_call(current, clock)
            epoch_end = current % exp.steps_per_epoch == 0 or current == exp.total_steps
            if epoch_end:
                self._epoch_means(current)
                self.progress.epoch_end(current, *train_values, self._evaluate(evaluation, current),
                                        clock.end_epoch())
                self._schedule_card(current)
            if epoch_end or (config.checkpoint_steps and current % config.checkpoint_steps == 0):
                began_save = time.perf_counter()
                self._save(current)
                clock.add(time.perf_counter() - began_save, 0)  # saving is part of the training time
            if self.interrupts.requested and current < exp.total_steps:
                self._interrupted(current)
        self._export()
        self.end_session('success')
        self.writers.close()
        result = self._result(current, time.perf_counter() - began, clock.steps_per_sec() * config.batch_size)
        self.progress.summary(self._summary_lines(result))
        return result

    def _loop_call(self, current, clock):
        """One call of the compiled loop from step `current`; returns the new step and its (means, last rate)."""
        num_steps = self._next_stop(current) - current
        self.progress.begin(current)
        began = time.perf_counter()
        self._call_steps = (current, current + num_steps)
        try:
            means, rate = self.call(self.loop.train, tf.constant(num_steps, tf.int64))
        except (tf.errors.FailedPreconditionError, tf.errors.OutOfRangeError, tf.errors.NotFoundError,
                tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
            if self.experiment.source is None:
                raise
            # What a stream read failed on (a shard shorter than its epoch, a file gone, or one whose contents do
            # not decode, values the step's ops refuse: checked up front in memory, only once read here).
            given = self.config.steps_per_epoch
            needs = (f' (--steps_per_epoch={given} reads {given} x {self.config.batch_size // self.experiment.shards} '
                     'examples of each input shard per epoch)') if given else ''
            raise faults.Stop(f'the input stream failed in steps {current}..{current + num_steps - 1}: '
                              f'{type(e).__name__}: {data.one_line(e, 300)}{needs}; the last checkpoint is '
                              f'{recovery.latest(self.manager.directory)}') from None
        values = ({name: float(v) for name, v in means.items()}, float(rate))
        self._check_nonfinite()
        seconds = time.perf_counter() - began
        clock.add(seconds, num_steps)
        current += num_steps
        summaries.throughput(self.writers, current, num_steps / seconds,
                             num_steps * self.config.batch_size / seconds)
        self.progress.step(current, *values)
        return current, values

    def _schedule_steps(self):
        """The schedule's parameters, lengths in steps, as the hparams have them."""
        prefix = 'schedule.'
        return {k[len(prefix):]: v for k, v in self.experiment.hparams().items() if k.startswith(prefix)}

    def _epoch_means(self, step):
        """The means of the epoch's steps so far (none before a first step), at `step`."""
        *sums, count = self.epoch_totals.numpy().tolist()
        if count:
            summaries.epoch_means(self.writers, step, {name: total / count
                                                       for name, total in zip(self.loop.value_names, sums)})

    def _schedule_card(self, step):
        steps = self._schedule_steps()
        shown = ', '.join(f'{k} {v:.3g}' if isinstance(v, float) else f'{k} {v}' for k, v in sorted(steps.items())
                          if k not in ('name', 'total_steps') and isinstance(v, (int, float)) and v)
        title = '\n'.join(textwrap.wrap(f'{self.config.schedule}: {shown}' if shown else str(self.config.schedule),
                                         60)[:3])
        summaries.schedule_card(self.writers, self.experiment.schedule, self.experiment.total_steps, title, step)

    def _session(self, status=None):
        summaries.session(self.config.model_dir, self.label, self.experiment.hparams(), self.evaluations,
                          task.directions(self.model), status)

    def end_session(self, status):
        """The HParams session's end, on the way out of the run; a failure to write it is only logged."""
        if self.writers is None:
            return
        try:
            self._session(status)
        except (OSError, tf.errors.OpError) as e:
            logging.warning('could not write the HParams session of %s: %s', self.config.model_dir, e)

    def _next_stop(self, current):
        """The next step at which the loop call must return: epoch end, checkpoint, the run's end."""
        stops = [current + self.config.steps_per_loop, self.experiment.total_steps,
                 (current // self.experiment.steps_per_epoch + 1) * self.experiment.steps_per_epoch]
        if self.config.checkpoint_steps:
            stops.append((current // self.config.checkpoint_steps + 1) * self.config.checkpoint_steps)
        return min(stops)

    def _evaluate(self, evaluation, current):
        if evaluation is None:
            return None
        try:
            with self._averaged_weights():
                values = {name: float(v) for name, v in self.loop.evaluate(iter(evaluation)).items()}
        except tf.errors.OpError as e:
            # What only reading the evaluation data shows (a file that does not decode, a label the loss refuses):
            # one line, after saving the epoch trained.
            self._save(current)
            raise faults.Stop(f'the evaluation at step {current} failed: {type(e).__name__}: {data.one_line(e, 300)}'
                              f'; the last checkpoint is {recovery.latest(self.manager.directory)}') from None
        summaries.evaluation(self.writers, current, values)
        self.evaluations.append({'step': current, **values})
        rundir.save_evaluations(self.config.model_dir, self.evaluations)
        self._session()
        return values

    @contextlib.contextmanager
    def _averaged_weights(self):
        """With a moving average of the weights (--ema_momentum): the model holds the moving average inside, its trained weights after."""
        if not optimizers.uses_average(self.optimizer):
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
        export.save(self.model, self.experiment.element_spec[0], self.export_dir, self.experiment.serving_outputs)

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
                      model=self.model, already_finished=already_finished, directions=task.directions(self.model))

    def _summary_lines(self, result):
        lines = []
        if result.evaluations:
            names = ['loss', *(name for name in self.model.get_metrics_result() if name in result.final
                                and name != 'loss')]
            final = ', '.join(f'{name} {result.final[name]:.4f}' for name in names)
            best = [f'{name} {result.best(name)[name]:.4f} (step {result.best(name)["step"]})'
                    for name in names if name in result.directions and len(result.evaluations) > 1]
            lines.append(f'eval: final {final}' + (f'; best {", ".join(best)}' if best else ''))
        if not result.already_finished:
            lines.append(f'trained steps {self.start}..{result.step} in {result.seconds:.1f} s, '
                         f'{result.examples_per_sec:.0f} examples/s in the training loop')
        lines.append(f'checkpoints in {self.config.model_dir}, SavedModel in {self.export_dir}')
        return lines
