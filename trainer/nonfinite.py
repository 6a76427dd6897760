"""Non-finite losses: an update is applied only when the loss and every gradient are finite, in graph.

A step with a non-finite loss or gradient (on any replica) leaves the weights and the optimizer's state as
they were and adds one to `Guard.skipped`; the loop compares that counter before and after each step, in
graph, and stops its call (--on_nonfinite=stop) or goes on (skip). Python reads the counter once per loop
call, so there is no host round trip per step.
"""
import tensorflow as tf

MODES = ('stop', 'skip')


class Guard:
    """Counters of skipped steps; create under the strategy's scope."""

    def __init__(self, mode):
        if mode not in MODES:
            raise ValueError(f'on_nonfinite must be one of {MODES}, got {mode!r}')
        self.mode = mode
        aggregation = tf.VariableAggregation.ONLY_FIRST_REPLICA
        self.skipped = tf.Variable(0, dtype=tf.int64, trainable=False, name='nonfinite_steps',
                                   aggregation=aggregation)
        self.last_step = tf.Variable(-1, dtype=tf.int64, trainable=False, name='last_nonfinite_step',
                                     aggregation=aggregation)

    def apply(self, optimizer, loss, grads, variables, check_gradients=True):
        """In a replica context: `optimizer.apply(grads, variables)` if all replicas' loss/grads are finite.

        check_gradients=False for a LossScaleOptimizer: its scaled gradients may overflow by design, and it
        skips such updates itself.
        """
        finite = tf.math.is_finite(loss)
        if check_gradients:
            finite = tf.logical_and(finite, tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads]))
        # The decision must be the same on every replica, and the optimizer's gradient all-reduce cannot sit
        # inside a cond in a replica context; so decide and branch in the cross-replica context, as Keras's
        # LossScaleOptimizer does.
        return tf.distribute.get_replica_context().merge_call(
            lambda strategy, finite, grads: self._apply_if(strategy, finite, grads, optimizer, variables),
            args=(finite, grads))

    def _apply_if(self, strategy, finite, grads, optimizer, variables):
        all_finite = tf.reduce_all(strategy.experimental_local_results(finite))

        def apply():
            strategy.extended.call_for_each_replica(optimizer.apply, args=(grads, variables))
            return tf.constant(True)

        def skip():
            self.skipped.assign_add(1)
            return tf.constant(False)

        return tf.cond(all_finite, apply, skip)

    def counts(self):
        """(skipped steps so far, last skipped step or -1), read on the host once per loop call."""
        return int(self.skipped.numpy()), int(self.last_step.numpy())


def all_finite(variables):
    """Whether every variable is finite (checked before each checkpoint: a checkpoint is never non-finite)."""
    checks = [tf.reduce_all(tf.math.is_finite(v)) for v in variables if tf.as_dtype(v.dtype).is_floating]
    return bool(tf.reduce_all(checks).numpy()) if checks else True
