"""Schedules built from other schedules: a warmup in front of one, and several one after another."""

import keras
import tensorflow as tf

from schedules import base, validation


def _serialize(schedule):
    return keras.optimizers.schedules.serialize(schedule)


def _deserialize(config):
    return keras.optimizers.schedules.deserialize(config)


@base.register
class Warmup(base.Schedule):
    """A warmup from start_lr over warmup_steps in front of (prefix) or over the start of (no prefix) a schedule.

    With prefix (the default): start_lr + (schedule(0) - start_lr) * (s / w) ** warmup_power for s < w, then
    schedule(s - w). Without prefix: the same warmup over steps [0, w) of the schedule, then schedule(s), as
    timm's `warmup_prefix=False` (which jumps from the peak schedule(0) to schedule(w) when its warmup ends).
    warmup_power is Model Garden's `PolynomialWarmUp` power (1: linear). Works with any Keras LearningRateSchedule.
    Model Garden's `LinearWarmup` and `PolynomialWarmUp` lay the warmup over the schedule and ramp to schedule(w);
    here the ramp always ends at schedule(0).
    Python only (no flag): it wraps a schedule object. The registered cosine, cosine_restarts and
    polynomial_restarts take `warmup_prefix` and `warmup_power` themselves, flags included.

    >>> import schedules
    >>> s = schedules.warmup(schedules.get("constant", initial_lr=1.0), warmup_steps=4, start_lr=0.0)
    >>> [round(float(s(x)), 4) for x in (0, 2, 4, 100)]
    [0.0, 0.5, 1.0, 1.0]
    >>> inner = schedules.get("polynomial", initial_lr=1.0, min_lr=0.0, decay_steps=10)
    >>> s = schedules.warmup(inner, warmup_steps=4, prefix=False, warmup_power=2.0)
    >>> [round(float(s(x)), 4) for x in (0, 2, 3, 4, 5)]
    [0.0, 0.25, 0.5625, 0.6, 0.5]
    """

    _LATER = {"prefix": True, "warmup_power": 1.0}

    def __init__(self, schedule, warmup_steps, start_lr=0.0, prefix=True, warmup_power=1.0):
        if isinstance(schedule, dict):
            schedule = _deserialize(schedule)
        if not isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            raise validation.ParameterError("schedule", "a keras LearningRateSchedule", schedule)
        super().__init__(schedule=schedule,
                         warmup_steps=validation.whole("warmup_steps", warmup_steps),
                         start_lr=validation.real("start_lr", start_lr, low=0.0),
                         prefix=validation.boolean("prefix", prefix),
                         warmup_power=validation.real("warmup_power", warmup_power, low=0.0, low_open=True))

    def rate(self, step):
        c = self._config
        inner = c["schedule"]
        shift = c["warmup_steps"] if c["prefix"] else 0
        after = tf.cast(inner(tf.maximum(step - shift, 0)), tf.float64)
        if c["warmup_steps"] == 0:
            return after
        target = tf.cast(inner(tf.constant(0, tf.int64)), tf.float64)
        warm = base.linear(c["start_lr"], target, base.ramp(base.as_float(step), c["warmup_steps"],
                                                             c["warmup_power"]))
        return tf.where(step < c["warmup_steps"], warm, after)

    def get_config(self):
        return dict(super().get_config(), schedule=_serialize(self._config["schedule"]))


@base.register
class Sequence(base.Schedule):
    """Runs schedules one after another: each for its steps, its own step count starting at 0.

    `phases` is a list of (schedule, steps); the last schedule goes on past its steps (its steps may be None).

    >>> import schedules
    >>> s = schedules.sequence([(schedules.get("constant", initial_lr=1.0), 10),
    ...                         (schedules.get("polynomial", initial_lr=1.0, min_lr=0.0, decay_steps=10), None)])
    >>> [round(float(s(x)), 4) for x in (0, 9, 10, 15, 20, 50)]
    [1.0, 1.0, 1.0, 0.5, 0.0, 0.0]
    """

    def __init__(self, phases):
        if not phases:
            raise validation.ParameterError("phases", "a non-empty list of (schedule, steps)", phases)
        checked = []
        for i, phase in enumerate(phases):
            schedule, steps = phase
            if isinstance(schedule, dict):
                schedule = _deserialize(schedule)
            if not isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
                raise validation.ParameterError(f"phases[{i}]", "a keras LearningRateSchedule", schedule)
            if steps is not None or i < len(phases) - 1:
                steps = validation.whole(f"phases[{i}] steps", steps, low=1)
            checked.append((schedule, steps))
        super().__init__(phases=checked)

    def rate(self, step):
        phases = self._config["phases"]
        starts = [0]
        for _, steps in phases[:-1]:
            starts.append(starts[-1] + steps)
        flat = tf.reshape(step, [-1])
        rates = tf.stack([tf.cast(schedule(tf.maximum(flat - start, 0)), tf.float64)
                          for (schedule, _), start in zip(phases, starts)], axis=-1)
        index = tf.searchsorted(tf.constant(starts[1:], tf.int64), flat, side="right")
        chosen = tf.gather(rates, index, batch_dims=1)
        return tf.reshape(chosen, tf.shape(step))

    def get_config(self):
        return {"phases": [[_serialize(schedule), steps] for schedule, steps in self._config["phases"]]}


def warmup(schedule, warmup_steps, start_lr=0.0, prefix=True, warmup_power=1.0):
    """Puts a warmup from start_lr in front of `schedule` (or, without prefix, over its first warmup_steps)."""
    return Warmup(schedule, warmup_steps, start_lr, prefix, warmup_power)


def sequence(phases):
    """Runs each (schedule, steps) of `phases` in turn, restarting the step count at 0 in each."""
    return Sequence(phases)
