"""The compiled inner loop: `steps_per_loop` training steps per call, in graph, with per-step summaries.

A step is Keras's own: y_pred = model(x), loss = model.compute_loss(x, y, y_pred, sample_weight), gradients
by tf.GradientTape, optimizer.apply, then model.compute_metrics; it knows no loss, metric or dtype.

The global step (an int64 tf.Variable) is the only clock: the optimizer's learning rate is
`schedule(global_step)`, read before the step is applied, and the step is incremented after it, so the rate
applied at step s is exactly schedule(s); the batch of step s is `batches(s)` (trainer.data.TrainBatches),
gathered in graph from the examples in memory. Everything per step (batch, forward, backward, update, the
summaries) happens inside one tf.function; Python runs once per call.

Under a strategy each replica's loss is its share of the global batch's: Keras's reductions (and its
sum of `model.losses`, the regularizers) divide by the number of replicas, and the gradients are summed
across them. An override of compute_loss must return its replica's share likewise.
"""
import keras
import tensorflow as tf

from trainer import nonfinite, summaries, task


def _scalar(name, value, step):
    # Inside tf.range's while loop the name scope is 'while/', which tf.summary would put in the tag.
    with tf.compat.v1.get_default_graph().name_scope(None):
        tf.summary.scalar(f'{summaries.BATCH}/{name}', value, step=step)


def value_names(model):
    """'loss' and the names of the model's metrics (fixed once they are built: trainer.task.check builds them)."""
    return ['loss', *(name for name in model.get_metrics_result() if name != 'loss')]


class Loop:
    """Training and evaluation functions for a compiled `model` under `strategy`.

    `train(num_steps)` runs num_steps steps from the global step on, each on its batch `batches(step)`, and
    returns ({'loss': mean, metric name: mean, ...} over its good steps, last learning rate) as tensors;
    each step's values are those of its batch, logged as batch/<name>. `epoch_totals`, if given, a float64
    variable [len(value_names) + 1], gets the call's sums of each value and its number of good steps added
    in the same call, so that it is always in step with the global step (the controller's epoch means).
    `evaluate(iterator)` returns {'loss', metric names...} over every example left in a distributed iterator
    of a finite dataset (its loss weighted by batch size, as model.evaluate does).
    """

    def __init__(self, model, optimizer, strategy, global_step, writer, batches, jit_compile=False,
                 on_nonfinite='stop', epoch_totals=None):
        self._model = model
        self._optimizer = optimizer
        self._strategy = strategy
        self._step = global_step
        self._writer = writer
        self._batches = batches
        self._batch = batches.batch_size
        self._replicas = strategy.num_replicas_in_sync
        if self._batch % self._replicas:
            raise ValueError(f'batch size {self._batch} does not split evenly over {self._replicas} replicas')
        self._loss_scale = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        self.value_names = value_names(model)
        self.metric_names = self.value_names[1:]
        self._epoch_totals = epoch_totals
        with strategy.scope():
            self.guard = nonfinite.Guard(on_nonfinite)
        # The summaries and the gather from host memory cannot be XLA-compiled; the step itself can.
        self._replica_step = tf.function(self._replica_step, jit_compile=True) if jit_compile \
            else self._replica_step
        self.train = tf.function(self._train)
        self.evaluate = tf.function(self._evaluate)

    def _loss(self, x, y, y_pred, sample_weight, training):
        """This replica's share of the global batch's loss."""
        return task.compute_loss(self._model, x, y, y_pred, sample_weight, training)

    def _replica_step(self, *batch):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
        self._model.reset_metrics()  # each step's metrics are of its batch alone
        with tf.GradientTape() as tape:
            y_pred = self._model(x, training=True)
            loss = self._loss(x, y, y_pred, sample_weight, training=True)
            scaled = self._optimizer.scale_loss(loss) if self._loss_scale else loss
        variables = self._model.trainable_variables
        bad = self.guard.apply(self._optimizer, loss, tape.gradient(scaled, variables), variables,
                               check_gradients=not self._loss_scale)
        self._model.compute_metrics(x, y, y_pred, sample_weight)
        return tf.cast(loss, tf.float32), bad

    def _metrics(self):
        """The metrics' values in the cross-replica context: Keras's metric variables sum over replicas there."""
        values = self._model.get_metrics_result()
        return {name: tf.cast(values[name], tf.float32) for name in self.metric_names}

    def _shares(self, batch):
        """The global batch as per-replica values: each replica's contiguous share (tf.data's distribution split
        it so), sliced on the host, so only its share goes to each device."""
        share = self._batch // self._replicas
        if share == self._batch:
            return batch

        # A global batch (every worker gathers it) is cut by the global replica id; a worker's part of it (a
        # stream reads its shards only) by the replica's place on this worker (replica ids are worker-major).
        local = len(self._strategy.extended.worker_devices) if self._batches.per_worker else self._replicas

        def replica_share(context):
            first = context.replica_id_in_sync_group % local * share
            return tf.nest.map_structure(lambda t: t[first:first + share], batch)
        with tf.device('/cpu:0'):
            return self._strategy.experimental_distribute_values_from_function(replica_share)

    def repeat_step(self, batch, num_steps):
        """The compiled training step applied num_steps times to one batch: no input pipeline, no summaries.

        The ceiling the loop is measured against (trainer.bench); returns the last step's {'loss', metrics}
        and the number of non-finite steps.
        """
        return self._repeat(batch, tf.constant(num_steps, tf.int64))

    @tf.function
    def _repeat(self, batch, num_steps):
        values = {name: tf.constant(0.0) for name in self.value_names}
        bad_steps = tf.constant(0.0)
        shares = self._shares(batch)
        for _ in tf.range(num_steps):
            loss, bad = self._strategy.run(self._replica_step, args=tuple(shares))
            values = {'loss': self._sum(loss), **self._metrics()}
            # Using the verdict keeps the step whole: unused, its finiteness check would be pruned from the graph.
            bad_steps += tf.cast(self._sum(bad) > 0.0, tf.float32)
            self._step.assign_add(1)
        return values, bad_steps

    def _sum(self, per_replica):
        return self._strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    def _train(self, num_steps):
        totals = {name: tf.constant(0.0) for name in self.value_names}
        count = tf.constant(0.0)
        rate = tf.constant(0.0)
        # The loop's condition, not a `break`, ends a call at a bad step under stop: autograph would wrap the
        # rest of the body in two conds per step.
        done, running = tf.constant(0, tf.int64), tf.constant(True)
        # The step variable moves by one per step that continues the call (under stop, a bad step ends it), so
        # step = first + done: the next batch depends on the loop counter alone and may be gathered early.
        first = self._step.read_value()
        with self._writer.as_default():
            while tf.logical_and(running, done < num_steps):
                step = first + done
                rate = tf.cast(self._optimizer.learning_rate, tf.float32)
                loss, bad = self._strategy.run(self._replica_step, args=tuple(self._shares(self._batches(step))))
                values = {'loss': self._sum(loss), **self._metrics()}
                bad = self._sum(bad)
                _scalar('learning_rate', rate, step)
                for name, value in values.items():
                    _scalar(name, value, step)
                good = self.guard.record(bad, step)
                if self.guard.mode == 'stop':
                    # The bad step stays uncounted: the run stops at it, and saves nothing after it.
                    running = good
                    self._step.assign_add(tf.cast(good, tf.int64))
                else:
                    self._step.assign_add(1)
                done += 1
                # Means over the good steps: a bad step's loss is not finite.
                totals = {name: totals[name] + tf.where(good, values[name], 0.0) for name in totals}
                count += tf.cast(good, tf.float32)
        self.guard.check_state(self._model.variables + self._optimizer.variables)
        if self._epoch_totals is not None:
            self._epoch_totals.assign_add(tf.cast(tf.stack([totals[name] for name in self.value_names] + [count]),
                                                  tf.float64))
        count = tf.maximum(count, 1.0)
        return {name: total / count for name, total in totals.items()}, rate

    def _replica_eval(self, *batch):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
        y_pred = self._model(x, training=False)
        loss = self._loss(x, y, y_pred, sample_weight, training=False)
        self._model.compute_metrics(x, y, y_pred, sample_weight)
        count = tf.cast(tf.shape(tf.nest.flatten(x)[0])[0], tf.float32)
        # The replica's share times the replicas is its batch's mean; an empty share adds nothing.
        return tf.cast(tf.reduce_sum(loss), tf.float32) * self._replicas * count, count

    def _evaluate(self, iterator):
        self._model.reset_metrics()
        loss, count = tf.constant(0.0), tf.constant(0.0)
        for batch in iterator:
            sums = self._strategy.run(self._replica_eval, args=tuple(batch))
            loss += self._sum(sums[0])
            count += self._sum(sums[1])
        return {'loss': loss / count, **self._metrics()}
