"""Single-cycle shapes: cosine with warmup, one-cycle, and warmup-stable-decay."""

import tensorflow as tf

from schedules import base, validation


@base.register
class Cosine(base.Schedule):
    """Warmup, then one cosine decay, then min_lr forever.

    lr(s) = min_lr + (initial_lr - min_lr) * (s / w) ** warmup_power                for s < w = warmup_steps
          = min_lr + (initial_lr - min_lr) * ((1 + cos(pi * x ** k_decay)) / 2) ** exponent  for w <= s < T
          = min_lr                                                                   for s >= T = total_steps,
    with x = (s - w) / (T - w), or x = s / T with warmup_prefix=False (the warmup laid over the decay's first w
    steps, which then goes on from where it is at w: timm's `warmup_prefix=False`). `exponent` is optax's
    (`cosine_decay_schedule(exponent=...)`), `k_decay` is timm's (`CosineLRScheduler(k_decay=...)`, Zhang et al.,
    2020), `warmup_power` Model Garden's `PolynomialWarmUp` power. timm's one-cycle `CosineLRScheduler(t_initial,
    warmup_t, warmup_prefix)` is total_steps = t_initial with warmup_prefix=False, and total_steps = t_initial +
    warmup_t with warmup_prefix=True.
    timm's `CosineLRScheduler` warms up from its own `warmup_lr_init` and defaults to `warmup_prefix=False`; here
    the warmup starts at min_lr and warmup_prefix defaults to True (the decay starts after the warmup).
    optax's `warmup_cosine_decay_schedule` warms up from its own `init_value`; here the warmup starts at min_lr.
    Model Garden's `PolynomialWarmUp` starts from step 1's rate (it takes `max(step, 1)`); here from min_lr at 0.

    >>> s = Cosine(initial_lr=1.0, min_lr=0.0, warmup_steps=10, total_steps=110)
    >>> [round(float(s(x)), 4) for x in (0, 5, 10, 60, 110, 500)]
    [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]
    >>> s = Cosine(initial_lr=1.0, min_lr=0.0, warmup_steps=10, total_steps=110, exponent=2.0, warmup_power=2.0)
    >>> [round(float(s(x)), 4) for x in (5, 10, 60)]
    [0.25, 1.0, 0.25]
    >>> s = Cosine(initial_lr=1.0, min_lr=0.0, warmup_steps=50, total_steps=100, warmup_prefix=False)
    >>> [round(float(s(x)), 4) for x in (25, 49, 50, 75, 100)]
    [0.5, 0.98, 0.5, 0.1464, 0.0]
    """

    _LATER = {"exponent": 1.0, "k_decay": 1.0, "warmup_power": 1.0, "warmup_prefix": True}

    def __init__(self, initial_lr, min_lr, warmup_steps, total_steps, exponent=1.0, k_decay=1.0, warmup_power=1.0,
                 warmup_prefix=True):
        initial_lr, min_lr = validation.rates(initial_lr, min_lr)
        total_steps = validation.whole("total_steps", total_steps, low=1)
        super().__init__(
            initial_lr=initial_lr,
            min_lr=min_lr,
            warmup_steps=validation.whole("warmup_steps", warmup_steps, high=total_steps - 1),
            total_steps=total_steps,
            exponent=validation.real("exponent", exponent, low=0.0, low_open=True),
            k_decay=validation.real("k_decay", k_decay, low=0.0, low_open=True),
            warmup_power=validation.real("warmup_power", warmup_power, low=0.0, low_open=True),
            warmup_prefix=validation.boolean("warmup_prefix", warmup_prefix))

    def rate(self, step):
        c = self._config
        s = base.as_float(step)
        w, total = c["warmup_steps"], c["total_steps"]
        warm = base.linear(c["min_lr"], c["initial_lr"], base.ramp(s, w, c["warmup_power"]))
        decay_start = w if c["warmup_prefix"] else 0
        x = tf.minimum((s - decay_start) / (total - decay_start), 1.0)
        decay = cosine_decay(c["initial_lr"], c["min_lr"], x, c["exponent"], c["k_decay"])
        return tf.where(s < w, warm, decay)


def cosine_decay(peak, floor, x, exponent=1.0, k_decay=1.0):
    """floor + (peak - floor) * ((1 + cos(pi * x ** k_decay)) / 2) ** exponent, for x in [0, 1]."""
    if k_decay != 1.0:
        x = tf.pow(tf.maximum(x, 0.0), k_decay)
    if exponent == 1.0:
        return base.cosine(peak, floor, x)
    return base.linear(floor, peak, tf.pow(tf.maximum(base.cosine(1.0, 0.0, x), 0.0), exponent))


@base.register
class OneCycle(base.Schedule):
    """One cycle: a rise from start_lr to initial_lr, a fall to min_lr, then min_lr (fastai's, PyTorch's).

    The peak is at p = warmup_fraction * total_steps; start_lr is min_lr unless set. With x the fraction of a
    phase done, each phase is a half cosine (`anneal_shape="cosine"`) or a straight line (`"linear"`):

    lr(s) = start_lr -> initial_lr    over [0, p)
          = initial_lr -> min_lr      over [p, T), T = total_steps; min_lr from T on.
    With three_phase (the original paper's; PyTorch's `three_phase=True`): start_lr -> initial_lr over [0, p),
    initial_lr -> start_lr over [p, q), start_lr -> min_lr over [q, T), q = return_fraction * total_steps
    (default 2 p, PyTorch's; optax's `linear_onecycle_schedule` calls it `pct_final`).
    torch's `OneCycleLR` counts the peak at `pct_start * total_steps - 1` and the end at `total_steps - 1`.
    torch's three-phase `OneCycleLR` returns to its initial_lr at `2 * pct_start * total_steps - 2`, not 2 p.
    optax's `linear_onecycle_schedule` rounds its boundaries down to whole steps (`int(pct_start * steps)`).

    >>> s = OneCycle(initial_lr=1.0, min_lr=0.0, total_steps=100, warmup_fraction=0.2)
    >>> [round(float(s(x)), 4) for x in (0, 10, 20, 60, 100)]
    [0.0, 0.5, 1.0, 0.5, 0.0]
    >>> s = OneCycle(initial_lr=1.0, min_lr=0.0, total_steps=100, warmup_fraction=0.2, start_lr=0.2,
    ...              three_phase=True, return_fraction=0.6, anneal_shape="linear")
    >>> [round(float(s(x)), 4) for x in (0, 10, 20, 40, 60, 80, 100)]
    [0.2, 0.6, 1.0, 0.6, 0.2, 0.1, 0.0]
    """

    _LATER = {"start_lr": None, "three_phase": False, "return_fraction": None, "anneal_shape": "cosine"}

    def __init__(self, initial_lr, min_lr, total_steps, warmup_fraction=0.3, start_lr=None, three_phase=False,
                 return_fraction=None, anneal_shape="cosine"):
        initial_lr, min_lr = validation.rates(initial_lr, min_lr)
        warmup_fraction = validation.real("warmup_fraction", warmup_fraction, low=0.0, high=1.0, high_open=True)
        if start_lr is not None:
            start_lr = validation.real("start_lr", start_lr, low=0.0, high=initial_lr)
        three_phase = validation.boolean("three_phase", three_phase)
        if return_fraction is not None:
            if not three_phase:
                raise validation.ParameterError("return_fraction", "None unless three_phase", return_fraction)
            return_fraction = validation.real("return_fraction", return_fraction, low=warmup_fraction,
                                              high=1.0, low_open=True, high_open=True)
        elif three_phase and not 0.0 < warmup_fraction < 0.5:
            raise validation.ParameterError("warmup_fraction", "in (0, 0.5) with three_phase (the fall back to "
                                            "start_lr is as long as the rise), or set return_fraction",
                                            warmup_fraction)
        super().__init__(
            initial_lr=initial_lr,
            min_lr=min_lr,
            total_steps=validation.whole("total_steps", total_steps, low=1),
            warmup_fraction=warmup_fraction,
            start_lr=start_lr,
            three_phase=three_phase,
            return_fraction=return_fraction,
            anneal_shape=validation.choice("anneal_shape", anneal_shape, base.ANNEAL_SHAPES))

    def rate(self, step):
        c = self._config
        s = base.as_float(step)
        shape, total = c["anneal_shape"], c["total_steps"]
        start = c["min_lr"] if c["start_lr"] is None else c["start_lr"]
        peak = c["warmup_fraction"] * total
        rise = base.anneal(start, c["initial_lr"], s / max(peak, 1.0), shape)
        if not c["three_phase"]:
            fall = base.anneal(c["initial_lr"], c["min_lr"], tf.minimum((s - peak) / (total - peak), 1.0), shape)
            return tf.where(s < peak, rise, fall)
        back = (c["return_fraction"] or 2.0 * c["warmup_fraction"]) * total
        fall = base.anneal(c["initial_lr"], start, (s - peak) / (back - peak), shape)
        last = base.anneal(start, c["min_lr"], tf.minimum((s - back) / (total - back), 1.0), shape)
        return tf.where(s < peak, rise, tf.where(s < back, fall, last))


DECAY_SHAPES = ("linear", "cosine", "sqrt", "power", "exp")


@base.register
class WarmupStableDecay(base.Schedule):
    """Warmup-stable-decay ("trapezoid"), as used to train current language models.

    A warmup from min_lr to initial_lr over warmup_steps, (s / warmup_steps) ** warmup_power of the way up
    (linear by default; Model Garden's `PolynomialWarmUp` power), initial_lr for stable_steps, then a decay to
    min_lr over decay_steps, then min_lr. With x the fraction of the decay done, the decay is
    linear: 1 - x; cosine: (1 + cos(pi x)) / 2; sqrt: 1 - sqrt(x) (Hägele et al., 2024); power: 1 - x ** decay_power;
    exp: (r ** x - r) / (1 - r) with r = decay_ratio (exponential, shifted to end at 0); scaled to
    [min_lr, initial_lr]. These are timm's `WSDLRScheduler` decay functions ('1-sqrt' is sqrt), with its
    constant stable function.
    timm's `WSDLRScheduler` warms up from its own `warmup_lr_init`; here the warmup starts at min_lr.

    >>> s = WarmupStableDecay(initial_lr=1.0, min_lr=0.0, warmup_steps=10, stable_steps=20, decay_steps=10,
    ...                       decay_shape="linear")
    >>> [round(float(s(x)), 4) for x in (0, 5, 10, 29, 30, 35, 40, 99)]
    [0.0, 0.5, 1.0, 1.0, 1.0, 0.5, 0.0, 0.0]
    >>> s = WarmupStableDecay(initial_lr=1.0, min_lr=0.0, warmup_steps=0, stable_steps=0, decay_steps=10,
    ...                       decay_shape="power", decay_power=2.0)
    >>> [round(float(s(x)), 4) for x in (0, 5, 10)]
    [1.0, 0.75, 0.0]
    """

    _LATER = {"warmup_power": 1.0, "decay_power": 0.5, "decay_ratio": 0.1}

    def __init__(self, initial_lr, min_lr, warmup_steps, stable_steps, decay_steps, decay_shape="cosine",
                 warmup_power=1.0, decay_power=0.5, decay_ratio=0.1):
        initial_lr, min_lr = validation.rates(initial_lr, min_lr)
        super().__init__(
            initial_lr=initial_lr,
            min_lr=min_lr,
            warmup_steps=validation.whole("warmup_steps", warmup_steps),
            stable_steps=validation.whole("stable_steps", stable_steps),
            decay_steps=validation.whole("decay_steps", decay_steps, low=1),
            decay_shape=validation.choice("decay_shape", decay_shape, DECAY_SHAPES),
            warmup_power=validation.real("warmup_power", warmup_power, low=0.0, low_open=True),
            # Checked for the shape that uses it: the shared --decay_power may be power_decay's 0.
            decay_power=validation.real("decay_power", decay_power, low=0.0, low_open=decay_shape == "power"),
            decay_ratio=validation.real("decay_ratio", decay_ratio, low=0.0, high=1.0, low_open=True,
                                        high_open=True))

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
        elif c["decay_shape"] == "sqrt":
            remaining = 1.0 - tf.sqrt(x)
        elif c["decay_shape"] == "power":
            remaining = 1.0 - tf.pow(x, c["decay_power"])
        else:
            r = c["decay_ratio"]
            remaining = (tf.pow(tf.constant(r, tf.float64), x) - r) / (1.0 - r)
        warm = base.linear(c["min_lr"], c["initial_lr"], base.ramp(s, w, c["warmup_power"]))
        return tf.where(s < w, warm, base.linear(c["min_lr"], c["initial_lr"], remaining))
