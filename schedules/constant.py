"""Constant and piecewise-constant rates."""

import tensorflow as tf

from schedules import base, validation


@base.register
class Constant(base.Schedule):
    """lr(s) = initial_lr.

    >>> float(Constant(initial_lr=0.5)(1000))
    0.5
    """

    def __init__(self, initial_lr):
        initial_lr = validation.real("initial_lr", initial_lr, low=0.0, low_open=True)
        super().__init__(initial_lr=initial_lr)

    def rate(self, step):
        return tf.fill(tf.shape(step), tf.constant(self._config["initial_lr"], tf.float64))


@base.register
class PiecewiseConstant(base.Schedule):
    """lr(s) = values[i] for boundaries[i-1] < s <= boundaries[i] (as Keras's PiecewiseConstantDecay).

    >>> s = PiecewiseConstant(boundaries=[10, 20], values=[1.0, 0.5, 0.1])
    >>> [round(float(s(x)), 3) for x in (10, 11, 20, 21)]
    [1.0, 0.5, 0.5, 0.1]
    """

    def __init__(self, boundaries, values):
        boundaries = [validation.whole(f"boundaries[{i}]", b) for i, b in enumerate(boundaries)]
        if any(b >= c for b, c in zip(boundaries, boundaries[1:])):
            raise validation.ParameterError("boundaries", "strictly increasing", boundaries)
        values = [validation.real(f"values[{i}]", v, low=0.0) for i, v in enumerate(values)]
        if len(values) != len(boundaries) + 1:
            raise validation.ParameterError(
                "values", f"a list of len(boundaries) + 1 = {len(boundaries) + 1} rates", values)
        super().__init__(boundaries=boundaries, values=values)

    def rate(self, step):
        boundaries = tf.constant(self._config["boundaries"], tf.int64)
        index = tf.searchsorted(boundaries, tf.reshape(step, [-1]), side="left")
        values = tf.gather(tf.constant(self._config["values"], tf.float64), index)
        return tf.reshape(values, tf.shape(step))
