"""The compiled inner loop: `steps_per_loop` training steps per call, in graph, with per-step summaries.

The global step (an int64 tf.Variable) is the only clock: the optimizer's learning rate is
`schedule(global_step)`, read before the step is applied, and the step is incremented after it, so the rate
applied at step s is exactly schedule(s); the batch of step s is `batches(s)` (trainer.data.TrainBatches),
gathered in graph from the examples in memory. Everything per step (batch, forward, backward, update, the
three summaries) happens inside one tf.function; Python runs once per call.
"""
import keras
import tensorflow as tf

from trainer import nonfinite


def _scalar(name, value, step):
    # Inside tf.range's while loop the name scope is 'while/', which tf.summary would put in the tag.
    with tf.compat.v1.get_default_graph().name_scope(None):
        tf.summary.scalar(name, value, step=step)


def _mean_loss(labels, logits, global_batch_size):
    per_example = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    return tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)


def _correct(labels, logits):
    return tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels), tf.float32)


class Loop:
    """Training and evaluation functions for `model` under `strategy`.

    `train(num_steps)` runs num_steps steps from the global step on, each on its batch `batches(step)`, and
    returns (mean loss, mean accuracy, last learning rate) of those steps as tensors.
    `evaluate(iterator)` returns (loss, accuracy) over every example left in a distributed iterator of a
    finite dataset.
    """

    def __init__(self, model, optimizer, strategy, global_step, writer, batches, jit_compile=False,
                 on_nonfinite='stop'):
        self._model = model
        self._optimizer = optimizer
        self._strategy = strategy
        self._step = global_step
        self._writer = writer
        self._batches = batches
        self._batch = batches.batch_size
        if self._batch % strategy.num_replicas_in_sync:
            raise ValueError(f'batch size {self._batch} does not split evenly over {strategy.num_replicas_in_sync} '
                             'replicas')
        self._loss_scale = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        with strategy.scope():
            self.guard = nonfinite.Guard(on_nonfinite)
        # The summaries and the gather from host memory cannot be XLA-compiled; the step itself can.
        self._replica_step = tf.function(self._replica_step, jit_compile=True) if jit_compile \
            else self._replica_step
        self.train = tf.function(self._train)
        self.evaluate = tf.function(self._evaluate)

    def _replica_step(self, images, labels):
        with tf.GradientTape() as tape:
            logits = self._model(images, training=True)
            loss = _mean_loss(labels, logits, self._batch)
            if self._model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(self._model.losses))
            scaled = self._optimizer.scale_loss(loss) if self._loss_scale else loss
        variables = self._model.trainable_variables
        bad = self.guard.apply(self._optimizer, loss, tape.gradient(scaled, variables), variables,
                               check_gradients=not self._loss_scale)
        return loss, tf.reduce_sum(_correct(labels, logits)) / self._batch, bad

    def _shares(self, images, labels):
        """The global batch as per-replica values: each replica's contiguous share (tf.data's distribution split
        it so), sliced on the host, so only its share goes to each device."""
        share = self._batch // self._strategy.num_replicas_in_sync
        if share == self._batch:
            return images, labels

        def replica_share(context):
            first = context.replica_id_in_sync_group * share  # global in a cluster
            return images[first:first + share], labels[first:first + share]
        with tf.device('/cpu:0'):
            return self._strategy.experimental_distribute_values_from_function(replica_share)

    def repeat_step(self, images, labels, num_steps):
        """The compiled training step applied num_steps times to one batch: no input pipeline, no summaries.

        The ceiling the loop is measured against (trainer.bench); returns the last (loss, accuracy) and the
        number of non-finite steps.
        """
        return self._repeat(images, labels, tf.constant(num_steps, tf.int64))

    @tf.function
    def _repeat(self, images, labels, num_steps):
        loss, accuracy, bad_steps = tf.constant(0.0), tf.constant(0.0), tf.constant(0.0)
        shares = self._shares(images, labels)
        for _ in tf.range(num_steps):
            loss, accuracy, bad = self._strategy.run(self._replica_step, args=shares)
            loss, accuracy = self._sum(loss), self._sum(accuracy)
            # Using the verdict keeps the step whole: unused, its finiteness check would be pruned from the graph.
            bad_steps += tf.cast(self._sum(bad) > 0.0, tf.float32)
            self._step.assign_add(1)
        return loss, accuracy, bad_steps

    def _sum(self, per_replica):
        return self._strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    def _train(self, num_steps):
        total_loss = tf.constant(0.0)
        total_accuracy = tf.constant(0.0)
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
                loss, accuracy, bad = self._strategy.run(self._replica_step, args=self._shares(*self._batches(step)))
                loss, accuracy, bad = self._sum(loss), self._sum(accuracy), self._sum(bad)
                _scalar('learning_rate', rate, step)
                _scalar('loss', loss, step)
                _scalar('accuracy', accuracy, step)
                good = self.guard.record(bad, step)
                if self.guard.mode == 'stop':
                    # The bad step stays uncounted: the run stops at it, and saves nothing after it.
                    running = good
                    self._step.assign_add(tf.cast(good, tf.int64))
                else:
                    self._step.assign_add(1)
                done += 1
                # Means over the good steps: a bad step's loss is not finite.
                total_loss += tf.where(good, loss, 0.0)
                total_accuracy += tf.where(good, accuracy, 0.0)
                count += tf.cast(good, tf.float32)
        self.guard.check_state(self._model.variables + self._optimizer.variables)
        count = tf.maximum(count, 1.0)
        return total_loss / count, total_accuracy / count, rate

    def _replica_eval(self, images, labels):
        logits = self._model(images, training=False)
        losses = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        return (tf.reduce_sum(losses), tf.reduce_sum(_correct(labels, logits)),
                tf.cast(tf.size(labels), tf.float32))

    def _evaluate(self, iterator):
        loss, correct, count = tf.constant(0.0), tf.constant(0.0), tf.constant(0.0)
        for images, labels in iterator:
            sums = self._strategy.run(self._replica_eval, args=(images, labels))
            loss += self._sum(sums[0])
            correct += self._sum(sums[1])
            count += self._sum(sums[2])
        return loss / count, correct / count
