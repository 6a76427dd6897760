"""Single-cycle shapes: cosine with warmup, one-cycle, and warmup-stable-decay."""

import tensorflow as tf

from schedules import base, validation


@base.register
class Cosine(base.Schedule):
    """Linear warmup, then one cosine decay, then min_lr forever.

    lr(s) = min_lr + (initial_lr - min_lr) * s / warmup_steps                    for s < warmup_steps
          = min_lr + (initial_lr - min_lr) * (1 + cos(pi * (s - w) / (T - w))) / 2 for w <= s < T = total_steps
          = min_lr                                                               for s >= total_steps

    >>> s = Cosine(initial_lr=1.0, min_lr=0.0, warmup_steps=10, total_steps=110)
    >>> [round(float(s(x)), 4) for x in (0, 5, 10, 60, 110, 500)]
    [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]
    """

    def __init__(self, initial_lr, min_lr, warmup_steps, total_steps):
        initial_lr, min_lr = validation.rates(initial_lr, min_lr)
        total_steps = validation.whole("total_steps", total_steps, low=1)
        super().__init__(
            initial_lr=initial_lr,
            min_lr=min_lr,
            warmup_steps=validation.whole("warmup_steps", warmup_steps, high=total_steps - 1),
            total_steps=total_steps)

    def rate(self, step):
        c = self._config
        s = base.as_float(step)
        w, total = c["warmup_steps"], c["total_steps"]
        warm = base.linear(c["min_lr"], c["initial_lr"], s / max(w, 1))
        decay = base.cosine(c["initial_lr"], c["min_lr"], tf.minimum((s - w) / (total - w), 1.0))
        return tf.where(s < w, warm, decay)


@base.register
class OneCycle(base.Schedule):
    """One cycle: a cosine rise from min_lr to initial_lr, a cosine fall back to min_lr, then min_lr.

    The peak is at p = warmup_fraction * total_steps (fastai's and PyTorch's OneCycle with cosine annealing;
    their start and end rates are both min_lr here).

    lr(s) = min_lr + (initial_lr - min_lr) * (1 - cos(pi * s / p)) / 2             for s < p
          = min_lr + (initial_lr - min_lr) * (1 + cos(pi * (s - p) / (T - p))) / 2  for p <= s < T
          = min_lr                                                                for s >= T = total_steps

    >>> s = OneCycle(initial_lr=1.0, min_lr=0.0, total_steps=100, warmup_fraction=0.2)
    >>> [round(float(s(x)), 4) for x in (0, 10, 20, 60, 100)]
    [0.0, 0.5, 1.0, 0.5, 0.0]
    """

    def __init__(self, initial_lr, min_lr, total_steps, warmup_fraction=0.3):
        initial_lr, min_lr = validation.rates(initial_lr, min_lr)
        super().__init__(
            initial_lr=initial_lr,
            min_lr=min_lr,
            total_steps=validation.whole("total_steps", total_steps, low=1),
            warmup_fraction=validation.real("warmup_fraction", warmup_fraction, low=0.0, high=1.0,
                                            high_open=True))

    def rate(self, step):
        c = self._config
        s = base.as_float(step)
        peak, total = c["warmup_fraction"] * c["total_steps"], c["total_steps"]
        rise = base.cosine(c["min_lr"], c["initial_lr"], s / max(peak, 1.0))
        fall = base.cosine(c["initial_lr"], c["min_lr"], tf.minimum((s - peak) / (total - peak), 1.0))
        return tf.where(s < peak, rise, fall)


DECAY_SHAPES = ("linear", "cosine", "sqrt")


@base.register
class WarmupStableDecay(base.Schedule):
    """Warmup-stable-decay ("trapezoid"), as used to train current language models.

    Linear warmup from min_lr to initial_lr over warmup_steps, initial_lr for stable_steps, then a decay to
    min_lr over decay_steps, then min_lr. With x the fraction of the decay done, the decay is
    linear: 1 - x; cosine: (1 + cos(pi x)) / 2; sqrt: 1 - sqrt(x) (Hägele et al., 2024), scaled to
    [min_lr, initial_lr].

    >>> s = WarmupStableDecay(initial_lr=1.0, min_lr=0.0, warmup_steps=10, stable_steps=20, decay_steps=10,
    ...                       decay_shape="linear")
    >>> [round(float(s(x)), 4) for x in (0, 5, 10, 29, 30, 35, 40, 99)]
    [0.0, 0.5, 1.0, 1.0, 1.0, 0.5, 0.0, 0.0]
    """

    def __init__(self, initial_lr, min_lr, warmup_steps, stable_steps, decay_steps, decay_shape="cosine"):
        initial_lr, min_lr = validation.rates(initial_lr, min_lr)
        super().__init__(
            initial_lr=initial_lr,
            min_lr=min_lr,
            warmup_steps=validation.whole("warmup_steps", warmup_steps),
            stable_steps=validation.whole("stable_steps", stable_steps),
            decay_steps=validation.whole("decay_steps", decay_steps, low=1),
            decay_shape=validation.choice("decay_shape", decay_shape, DECAY_SHAPES))

    def rate(self, step):
        c = self._config
        s = base.as_float(step)
        w = c["warmup_steps"]
        decay_start = w + c["stable_steps"]
        x = tf.clip_by_value((s - decay_start) / c["decay_steps"], 0.0, 1.0)
        if c["decay_shape"] == "linear":
            remaining = 1.0 - x
        elif c["decay_shape"] == "cosine":
            remaining = base.cosine(1.0, 0.0, x)
        else:
            remaining = 1.0 - tf.sqrt(x)
        warm = base.linear(c["min_lr"], c["initial_lr"], s / max(w, 1))
        return tf.where(s < w, warm, base.linear(c["min_lr"], c["initial_lr"], remaining))
