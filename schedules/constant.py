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


def _pieces(boundaries, values, first_boundary):
    """Checked (boundaries, values): whole, strictly increasing steps (>= first_boundary), one rate more."""
    boundaries = [validation.whole(f"boundaries[{i}]", b, low=first_boundary) for i, b in enumerate(boundaries)]
    if any(b >= c for b, c in zip(boundaries, boundaries[1:])):
        raise validation.ParameterError("boundaries", "strictly increasing", boundaries)
    values = [validation.real(f"values[{i}]", v, low=0.0) for i, v in enumerate(values)]
    if len(values) != len(boundaries) + 1:
        raise validation.ParameterError(
            "values", f"a list of len(boundaries) + 1 = {len(boundaries) + 1} rates", values)
    return boundaries, values


@base.register
class PiecewiseConstant(base.Schedule):
    """lr(s) = values[i] for boundaries[i-1] < s <= boundaries[i] (as Keras's PiecewiseConstantDecay).

    >>> s = PiecewiseConstant(boundaries=[10, 20], values=[1.0, 0.5, 0.1])
    >>> [round(float(s(x)), 3) for x in (10, 11, 20, 21)]
    [1.0, 0.5, 0.5, 0.1]
    """

    def __init__(self, boundaries, values):
        boundaries, values = _pieces(boundaries, values, first_boundary=0)
        super().__init__(boundaries=boundaries, values=values)

    def rate(self, step):
        boundaries = tf.constant(self._config["boundaries"], tf.int64)
        index = tf.searchsorted(boundaries, tf.reshape(step, [-1]), side="left")
        values = tf.gather(tf.constant(self._config["values"], tf.float64), index)
        return tf.reshape(values, tf.shape(step))


@base.register
class PiecewiseInterpolate(base.Schedule):
    """values[0] at step 0 and values[i] at step boundaries[i-1], joined by straight lines or half cosines.

    lr(s) = anneal(values[i], values[i+1], (s - b_i) / (b_i+1 - b_i)) for b_i <= s < b_i+1, with b_0 = 0,
    b_i = boundaries[i-1] and anneal linear (`anneal_shape="linear"`) or a half cosine; values[-1] from the last
    boundary on. This is `optax.piecewise_interpolate_schedule`, which takes scales instead of rates:
    values[i] = init_value * scale_1 * ... * scale_i.

    >>> s = PiecewiseInterpolate(boundaries=[10, 20], values=[0.0, 1.0, 0.5])
    >>> [round(float(s(x)), 4) for x in (0, 5, 10, 15, 20, 99)]
    [0.0, 0.5, 1.0, 0.75, 0.5, 0.5]
    """

    def __init__(self, boundaries, values, anneal_shape="linear"):
        boundaries, values = _pieces(boundaries, values, first_boundary=1)
        super().__init__(boundaries=boundaries, values=values,
                         anneal_shape=validation.choice("anneal_shape", anneal_shape, base.ANNEAL_SHAPES))

    def rate(self, step):
        c = self._config
        starts = [0, *c["boundaries"]]
        ends = [*c["boundaries"], starts[-1] + 1]
        flat = tf.reshape(step, [-1])
        index = tf.searchsorted(tf.constant(starts, tf.int64), flat, side="right") - 1
        start = tf.gather(tf.constant(starts, tf.float64), index)
        end = tf.gather(tf.constant(ends, tf.float64), index)
        fraction = tf.clip_by_value((base.as_float(flat) - start) / (end - start), 0.0, 1.0)
        values = c["values"]
        lr = base.anneal(tf.gather(tf.constant(values, tf.float64), index),
                         tf.gather(tf.constant([*values[1:], values[-1]], tf.float64), index), fraction,
                         c["anneal_shape"])
        return tf.reshape(lr, tf.shape(step))
