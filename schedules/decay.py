"""Monotone decays: exponential, inverse time and polynomial."""

import tensorflow as tf

from schedules import base, validation


@base.register
class Exponential(base.Schedule):
    """lr(s) = max(initial_lr * decay_rate ** (s / decay_steps), min_lr); floor(s / decay_steps) if staircase.

    >>> s = Exponential(initial_lr=1.0, decay_steps=10, decay_rate=0.5, min_lr=0.2)
    >>> [round(float(s(x)), 4) for x in (0, 10, 15, 30)]
    [1.0, 0.5, 0.3536, 0.2]
    """

    def __init__(self, initial_lr, decay_steps, decay_rate, staircase=False, min_lr=0.0):
        initial_lr, min_lr = validation.rates(initial_lr, min_lr)
        super().__init__(
            initial_lr=initial_lr,
            decay_steps=validation.whole("decay_steps", decay_steps, low=1),
            decay_rate=validation.real("decay_rate", decay_rate, low=0.0, high=1.0, low_open=True),
            staircase=bool(staircase),
            min_lr=min_lr)

    def rate(self, step):
        c = self._config
        exponent = base.as_float(step) / c["decay_steps"]
        if c["staircase"]:
            exponent = tf.floor(exponent)
        return tf.maximum(c["initial_lr"] * tf.pow(tf.constant(c["decay_rate"], tf.float64), exponent),
                          c["min_lr"])


@base.register
class InverseTime(base.Schedule):
    """lr(s) = initial_lr / (1 + decay_rate * s / decay_steps); floor(s / decay_steps) if staircase.

    >>> s = InverseTime(initial_lr=1.0, decay_steps=10, decay_rate=1.0)
    >>> [round(float(s(x)), 4) for x in (0, 10, 30)]
    [1.0, 0.5, 0.25]
    """

    def __init__(self, initial_lr, decay_steps, decay_rate, staircase=False):
        super().__init__(
            initial_lr=validation.real("initial_lr", initial_lr, low=0.0, low_open=True),
            decay_steps=validation.whole("decay_steps", decay_steps, low=1),
            decay_rate=validation.real("decay_rate", decay_rate, low=0.0),
            staircase=bool(staircase))

    def rate(self, step):
        c = self._config
        time = base.as_float(step) / c["decay_steps"]
        if c["staircase"]:
            time = tf.floor(time)
        return c["initial_lr"] / (1.0 + c["decay_rate"] * time)


@base.register
class Polynomial(base.Schedule):
    """lr(s) = (initial_lr - min_lr) * (1 - s / period) ** power + min_lr.

    Without `cycle`, period = decay_steps and s stops at decay_steps (min_lr from then on). With `cycle`,
    period = decay_steps * ceil(s / decay_steps) (decay_steps at s = 0): every multiple of decay_steps ends a
    period at min_lr and the next step starts the next, longer period, as in the seed and Keras's
    PolynomialDecay(cycle=True).

    >>> s = Polynomial(initial_lr=1.0, min_lr=0.0, decay_steps=10, cycle=True)
    >>> [round(float(s(x)), 4) for x in (0, 5, 10, 11, 20)]
    [1.0, 0.5, 0.0, 0.45, 0.0]
    """

    def __init__(self, initial_lr, min_lr, decay_steps, power=1.0, cycle=False):
        initial_lr, min_lr = validation.rates(initial_lr, min_lr)
        super().__init__(
            initial_lr=initial_lr,
            min_lr=min_lr,
            decay_steps=validation.whole("decay_steps", decay_steps, low=1),
            power=validation.real("power", power, low=0.0, low_open=True),
            cycle=bool(cycle))

    def rate(self, step):
        c = self._config
        decay_steps = tf.constant(c["decay_steps"], tf.int64)
        if c["cycle"]:
            periods = tf.maximum((step + decay_steps - 1) // decay_steps, 1)
            fraction = base.as_float(step) / base.as_float(periods * decay_steps)
        else:
            fraction = base.as_float(tf.minimum(step, decay_steps)) / c["decay_steps"]
        return (c["initial_lr"] - c["min_lr"]) * tf.pow(1.0 - fraction, c["power"]) + c["min_lr"]
