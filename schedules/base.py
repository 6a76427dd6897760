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
    """

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
        return dict(self._config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._config.items())
        return f"{type(self).__name__}({args})"


def as_float(step):
    return tf.cast(step, tf.float64)


def linear(start, end, fraction):
    """Straight line from `start` (fraction 0) to `end` (fraction 1)."""
    return start + (end - start) * fraction


def cosine(start, end, fraction):
    """Half a cosine wave from `start` (fraction 0) down or up to `end` (fraction 1)."""
    return end + 0.5 * (start - end) * (1.0 + tf.cos(math.pi * fraction))


def register(cls):
    return keras.saving.register_keras_serializable(package="stepwise")(cls)
