"""Monotone decays: exponential, inverse time and polynomial."""

import tensorflow as tf

from schedules import base, validation


@base.register
class Exponential(base.Schedule):
    """lr(s) = clip(initial_lr * decay_rate ** (s / decay_steps), min_lr, max_lr); floor(s / decay_steps) if staircase.

    A decay_rate above 1 grows the rate (an LR range test) and needs the ceiling max_lr, which it reaches and
    keeps; optax's `exponential_decay` calls that ceiling `end_value`.

    >>> s = Exponential(initial_lr=1.0, decay_steps=10, decay_rate=0.5, min_lr=0.2)
    >>> [round(float(s(x)), 4) for x in (0, 10, 15, 30)]
    [1.0, 0.5, 0.3536, 0.2]
    >>> grow = Exponential(initial_lr=1e-3, decay_steps=10, decay_rate=10.0, max_lr=1.0)
    >>> [round(float(grow(x)), 4) for x in (0, 10, 25, 30, 99)]
    [0.001, 0.01, 0.3162, 1.0, 1.0]
    """

    _LATER = {"max_lr": None}

    def __init__(self, initial_lr, decay_steps, decay_rate, staircase=False, min_lr=0.0, max_lr=None):
        initial_lr, min_lr = validation.rates(initial_lr, min_lr)
        if max_lr is not None:
            max_lr = validation.real("max_lr", max_lr, low=initial_lr)
        if max_lr is None and validation.real("decay_rate", decay_rate, low=0.0, low_open=True) > 1.0:
            raise validation.ParameterError("decay_rate", "in (0, 1], or above 1 with max_lr set (growth)",
                                            decay_rate)
        super().__init__(
            initial_lr=initial_lr,
            decay_steps=validation.whole("decay_steps", decay_steps, low=1),
            decay_rate=validation.real("decay_rate", decay_rate, low=0.0, low_open=True),
            staircase=bool(staircase),
            min_lr=min_lr,
            max_lr=max_lr)

    def rate(self, step):
        c = self._config
        exponent = base.as_float(step) / c["decay_steps"]
        if c["staircase"]:
            exponent = tf.floor(exponent)
        lr = tf.maximum(c["initial_lr"] * tf.pow(tf.constant(c["decay_rate"], tf.float64), exponent), c["min_lr"])
        return lr if c["max_lr"] is None else tf.minimum(lr, c["max_lr"])


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


@base.register
class PowerDecay(base.Schedule):
    """The power-law (rsqrt, Noam) decays of transformers: initial_lr * (s / w) ** -decay_power after a warmup.

    lr(s) = initial_lr * (s / w) ** warmup_power                      for s < w = warmup_steps
          = initial_lr * (max(s, 1) / max(w, 1)) ** -decay_power      for s >= w,
    times min(1, (T - s) / (linear_decay_fraction * T)) when T = total_steps is set (a linear fall to 0 at T,
    Model Garden's `PowerAndLinearDecay`). With w = 0 this is Model Garden's `DirectPowerDecay`
    (initial_lr * max(s, 1) ** power, its power = -decay_power); with a warmup, the part after it is Model Garden's
    with initial_learning_rate = initial_lr * w ** decay_power; decay_power=0.5 with
    initial_lr = (d_model * w) ** -0.5 is the Transformer's (Noam) rate d_model ** -0.5 * min(s ** -0.5, s * w ** -1.5).
    Model Garden's `offset` is `schedules.sequence` with a `constant` for the first offset steps.
    Model Garden's `PowerDecayWithOffset` keeps its `pre_offset_learning_rate` one step longer, at step offset.

    >>> s = PowerDecay(initial_lr=1.0, decay_power=0.5, warmup_steps=4)
    >>> [round(float(s(x)), 4) for x in (0, 2, 4, 16, 64)]
    [0.0, 0.5, 1.0, 0.5, 0.25]
    >>> s = PowerDecay(initial_lr=1.0, decay_power=0.5, total_steps=100, linear_decay_fraction=0.5)
    >>> [round(float(s(x)), 4) for x in (0, 25, 75, 100, 200)]
    [1.0, 0.2, 0.0577, 0.0, 0.0]
    """

    def __init__(self, initial_lr, decay_power=0.5, warmup_steps=0, total_steps=None, linear_decay_fraction=0.1,
                 warmup_power=1.0):
        if total_steps is not None:
            total_steps = validation.whole("total_steps", total_steps, low=1)
        super().__init__(
            initial_lr=validation.real("initial_lr", initial_lr, low=0.0, low_open=True),
            decay_power=validation.real("decay_power", decay_power, low=0.0),
            warmup_steps=validation.whole("warmup_steps", warmup_steps,
                                          high=None if total_steps is None else total_steps - 1),
            total_steps=total_steps,
            linear_decay_fraction=validation.real("linear_decay_fraction", linear_decay_fraction, low=0.0,
                                                  high=1.0),
            warmup_power=validation.real("warmup_power", warmup_power, low=0.0, low_open=True))

    def rate(self, step):
        c = self._config
        s = base.as_float(step)
        w = c["warmup_steps"]
        lr = c["initial_lr"] * tf.pow(tf.maximum(s, 1.0) / max(w, 1), -c["decay_power"])
        if c["total_steps"] is not None and c["linear_decay_fraction"] > 0:
            total = c["total_steps"]
            lr = lr * tf.clip_by_value((total - s) / (c["linear_decay_fraction"] * total), 0.0, 1.0)
        warm = c["initial_lr"] * base.ramp(s, w, c["warmup_power"])
        return tf.where(s < w, warm, lr)
