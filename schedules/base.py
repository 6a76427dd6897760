"""The base class every stepwise schedule shares: step in, float32 rate out, parameters as config."""

import math

import keras
import tensorflow as tf

# Steps are cast to float64 for the math; beyond 2**53 consecutive steps are no longer distinct there.
MAX_STEP = 2**53 - 1


class Schedule(keras.optimizers.schedules.LearningRateSchedule):
    """A learning rate that is a pure function of the global step.

    Subclasses validate their parameters in `__init__`, pass them to `super().__init__(**config)` (which
    becomes `get_config()`), and implement `rate(step)`: an int64 tensor of steps in [0, MAX_STEP] to a
    float64 tensor of rates of the same shape, with TensorFlow ops only, so the schedule works inside
    `tf.function`, under XLA and in any call order.

    Parameters added to a schedule after its first release are named in `_LATER` with their default; at that
    default they are left out of `get_config()` and `repr`, so an existing schedule's config stays what it was.
    """

    _LATER = {}

    def __init__(self, **config):
        super().__init__()
        self._config = config

    def __call__(self, step):
        step = tf.convert_to_tensor(step)
        if not step.dtype.is_integer:
            raise TypeError(f"{type(self).__name__} takes integer steps, got {step.dtype.name}")
        step = tf.clip_by_value(tf.cast(step, tf.int64), 0, MAX_STEP)
        return tf.cast(self.rate(step), tf.float32)

    def rate(self, step):
        raise NotImplementedError

    def get_config(self):
        return self._shown(self._config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._shown(self._config).items())
        return f"{type(self).__name__}({args})"

    def _shown(self, config):
        return {k: v for k, v in config.items()
                if not (k in self._LATER and v == self._LATER[k] and type(v) is type(self._LATER[k]))}


def as_float(step):
    return tf.cast(step, tf.float64)


def linear(start, end, fraction):
    """Straight line from `start` (fraction 0) to `end` (fraction 1)."""
    return start + (end - start) * fraction


def cosine(start, end, fraction):
    """Half a cosine wave from `start` (fraction 0) down or up to `end` (fraction 1)."""
    return end + 0.5 * (start - end) * (1.0 + tf.cos(math.pi * fraction))


def ramp(step, warmup_steps, power=1.0):
    """(s / warmup_steps) ** power: how far a warmup of warmup_steps has come at float64 step s (0 to 1)."""
    fraction = step / max(warmup_steps, 1)
    return fraction if power == 1.0 else tf.pow(tf.maximum(fraction, 0.0), power)


ANNEAL_SHAPES = ("cosine", "linear")


def anneal(start, end, fraction, shape):
    """From `start` (fraction 0) to `end` (fraction 1) along a half cosine or a straight line."""
    return cosine(start, end, fraction) if shape == "cosine" else linear(start, end, fraction)


def register(cls):
    return keras.saving.register_keras_serializable(package="stepwise")(cls)
