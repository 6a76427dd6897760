"""Cosine annealing with warm restarts, cycles placed by exact rational arithmetic on the step."""

import decimal
import fractions

import tensorflow as tf

from schedules import base, validation

# Cycle starts are tabulated when cycles grow; a multiplier so close to 1 that more cycles than this start
# below MAX_STEP is refused (cycle_multiplier=1 needs no table).
MAX_TABULATED_CYCLES = 2**16


def cycle_starts(cycle_steps, cycle_multiplier, max_cycles=None):
    """Returns (first_steps, starts, lengths) of the cycles, for a cycle_multiplier above 1.

    Cycle k spans the real interval [S_k, S_k+1) with S_k = cycle_steps * (m**k - 1) / (m - 1) and m the
    decimal `cycle_multiplier` prints as (1.2 is 6/5). first_steps[k] = ceil(S_k), computed exactly, is the
    first whole step in cycle k; starts[k] = S_k and lengths[k] = cycle_steps * m**k are the nearest floats.
    The list ends with the first cycle that starts past MAX_STEP, or with cycle max_cycles (the end of the
    last one), so its length is one more than the number of cycles.

    >>> cycle_starts(10, 1.5, max_cycles=3)[0]
    [0, 10, 25, 48]
    """
    m = fractions.Fraction(str(cycle_multiplier))
    p, q = m.numerator, m.denominator
    context = decimal.Context(prec=60)
    m_decimal = context.divide(decimal.Decimal(p), decimal.Decimal(q))
    first_steps, starts, lengths = [], [], []
    start, length = decimal.Decimal(0), decimal.Decimal(cycle_steps)
    k = 0
    while True:
        first_steps.append(_ceil(start, k, cycle_steps, p, q))
        starts.append(float(start))
        lengths.append(float(length))
        if first_steps[-1] > base.MAX_STEP or k == max_cycles:
            return first_steps, starts, lengths
        if k == MAX_TABULATED_CYCLES:
            raise validation.ParameterError(
                "cycle_multiplier",
                f"1, or large enough that at most {MAX_TABULATED_CYCLES} cycles of cycle_steps={cycle_steps} "
                "start below step 2**53 (or set max_cycles)", cycle_multiplier)
        start = context.add(start, length)
        length = context.multiply(length, m_decimal)
        k += 1


def _ceil(start, k, cycle_steps, p, q):
    """ceil(S_k), from the 60-digit S_k unless it is within rounding of a whole number."""
    fraction = start - int(start)
    if decimal.Decimal("1e-30") < fraction < 1 - decimal.Decimal("1e-30"):
        return int(start) + 1
    if k == 0:
        return 0
    # S_k = c * (p**k - q**k) / ((p - q) * q**(k - 1)), in integers.
    numerator = cycle_steps * (p**k - q**k)
    denominator = (p - q) * q**(k - 1)
    return -(-numerator // denominator)


def place(step, cycle_steps, cycle_multiplier, table):
    """(cycle index, position in the cycle, cycle length) of each int64 step; `table` is cycle_starts's (m > 1).

    Cycle i spans [S_i, S_i+1): for m = 1 by integer division, else by integer comparison with the exact first
    steps of the table, so no float logarithm ever places a step.
    """
    if cycle_multiplier == 1.0:
        cycle = step // cycle_steps
        return cycle, base.as_float(step - cycle * cycle_steps), tf.constant(float(cycle_steps), tf.float64)
    first_steps, starts, lengths = table
    flat = tf.reshape(step, [-1])
    cycle = tf.searchsorted(tf.constant(first_steps, tf.int64), flat, side="right") - 1
    last = tf.minimum(cycle, len(first_steps) - 2)
    length = tf.gather(tf.constant(lengths, tf.float64), last)
    position = tf.clip_by_value(base.as_float(flat) - tf.gather(tf.constant(starts, tf.float64), last),
                                0.0, length)
    shape = tf.shape(step)
    return (tf.reshape(tf.cast(cycle, tf.int64), shape), tf.reshape(position, shape), tf.reshape(length, shape))


@base.register
class CosineRestarts(base.Schedule):
    """Cosine annealing with warmup and warm restarts (SGDR), stateless and exact at every restart.

    Cycle i lasts L_i = cycle_steps * m**i steps (m = cycle_multiplier) and starts at
    S_i = cycle_steps * (m**i - 1) / (m - 1) (i * cycle_steps for m = 1). At position t = s - S_i in it:

    lr(s) = min_lr + (peak_i - min_lr) * (t / W_i) ** warmup_power           for t < W_i = warmup_steps * m**i
          = min_lr + (peak_i - min_lr) * (1 + cos(pi x ** k_decay)) / 2, x = (t - W_i) / (L_i - W_i)  otherwise,
    peak_i = max(initial_lr * peak_decay**i, min_lr); after max_cycles cycles, min_lr. With warmup_prefix=False
    each cycle's warmup is laid over the start of its decay instead, x = t / L_i (timm's `warmup_prefix=False`:
    the decay goes on from where it is at W_i).

    Whole step s belongs to cycle i when S_i <= s < S_i+1 under exact rational arithmetic, m read as the decimal
    it prints as (1.2 is 6/5). When lengths are fractional the curve is the continuous one sampled at whole
    steps: a cycle starting at S_i = 7441.6 first shows at step 7442 with t = 0.4. With whole lengths this is
    the seed's counter-based class (its `multi` is m - 1) at every step, and `optax.sgdr_schedule` of the cycles
    `warmup_cosine_decay_schedule(min_lr, peak_i, W_i, L_i, min_lr)`. With warmup_steps=0 it is torch's
    `CosineAnnealingWarmRestarts` and timm's `CosineLRScheduler` (its `cycle_mul`, `cycle_decay`, `cycle_limit`,
    `k_decay` are cycle_multiplier, peak_decay, max_cycles, k_decay). With max_cycles=1 and warmup_steps set,
    it is timm's one-cycle `CosineLRScheduler(t_initial, warmup_t=warmup_steps, warmup_lr_init=min_lr,
    warmup_prefix)` with the same warmup_prefix and cycle_steps = t_initial (+ warmup_t with warmup_prefix=True).
    Over several cycles timm warms up once, here every cycle (timm's single warmup over several cycles is
    `schedules.warmup(...)` around warmup_steps=0, Python only, `prefix=False` for `warmup_prefix=False`).
    timm's `CosineLRScheduler` lets a decayed peak fall below lr_min; here peaks stop at min_lr.
    timm's `cycle_limit` defaults to 1 (one cycle, then lr_min); max_cycles defaults to None (unlimited).
    timm's `warmup_prefix` defaults to False; warmup_prefix defaults to True (each decay starts after its warmup).

    >>> s = CosineRestarts(initial_lr=1.0, min_lr=0.0, warmup_steps=0, cycle_steps=10, cycle_multiplier=2.0)
    >>> [round(float(s(x)), 4) for x in (0, 5, 10, 20, 30, 70)]
    [1.0, 0.5, 1.0, 0.5, 1.0, 1.0]
    >>> s = CosineRestarts(initial_lr=1.0, min_lr=0.0, warmup_steps=5, cycle_steps=10, warmup_prefix=False)
    >>> [round(float(s(x)), 4) for x in (0, 4, 5, 9, 10, 14, 15)]
    [0.0, 0.8, 0.5, 0.0245, 0.0, 0.8, 0.5]
    """

    _LATER = {"k_decay": 1.0, "warmup_power": 1.0, "warmup_prefix": True}

    def __init__(self, initial_lr, min_lr, warmup_steps, cycle_steps, cycle_multiplier=1.0, peak_decay=1.0,
                 max_cycles=None, k_decay=1.0, warmup_power=1.0, warmup_prefix=True):
        super().__init__(**self._checked(initial_lr, min_lr, warmup_steps, cycle_steps, cycle_multiplier,
                                         peak_decay, max_cycles, k_decay, warmup_power, warmup_prefix))

    def _checked(self, initial_lr, min_lr, warmup_steps, cycle_steps, cycle_multiplier, peak_decay, max_cycles,
                 k_decay, warmup_power, warmup_prefix):
        initial_lr, min_lr = validation.rates(initial_lr, min_lr)
        cycle_steps = validation.whole("cycle_steps", cycle_steps, low=1)
        warmup_steps = validation.whole("warmup_steps", warmup_steps, high=cycle_steps - 1)
        cycle_multiplier = validation.real("cycle_multiplier", cycle_multiplier, low=1.0)
        peak_decay = validation.real("peak_decay", peak_decay, low=0.0, high=1.0, low_open=True)
        if max_cycles is not None:
            max_cycles = validation.whole("max_cycles", max_cycles, low=1)
        if cycle_multiplier > 1.0:
            self._table = cycle_starts(cycle_steps, cycle_multiplier, max_cycles)
        return dict(initial_lr=initial_lr, min_lr=min_lr, warmup_steps=warmup_steps, cycle_steps=cycle_steps,
                    cycle_multiplier=cycle_multiplier, peak_decay=peak_decay, max_cycles=max_cycles,
                    k_decay=validation.real("k_decay", k_decay, low=0.0, low_open=True),
                    warmup_power=validation.real("warmup_power", warmup_power, low=0.0, low_open=True),
                    warmup_prefix=validation.boolean("warmup_prefix", warmup_prefix))

    def rate(self, step):
        c = self._config
        cycle, position, length = self._place(step)
        warmup = length * (c["warmup_steps"] / c["cycle_steps"])
        peak_factor = tf.pow(tf.constant(c["peak_decay"], tf.float64), base.as_float(cycle))
        peak = tf.maximum(c["initial_lr"] * peak_factor, c["min_lr"])
        fraction = position / tf.maximum(warmup, 1.0)
        if c["warmup_power"] != 1.0:
            fraction = tf.pow(fraction, c["warmup_power"])
        warm = base.linear(c["min_lr"], peak, fraction)
        decay_start = warmup if c["warmup_prefix"] else 0.0
        x = (position - decay_start) / (length - decay_start)
        if c["k_decay"] != 1.0:
            x = tf.pow(tf.maximum(x, 0.0), c["k_decay"])
        lr = tf.where(position < warmup, warm, self._decay(peak, c["min_lr"], x))
        if c["max_cycles"] is not None:
            lr = tf.where(cycle >= c["max_cycles"], tf.constant(c["min_lr"], tf.float64), lr)
        return lr

    def _decay(self, peak, floor, x):
        return base.cosine(peak, floor, x)

    def _place(self, step):
        """(cycle index, position in the cycle, cycle length) of each step."""
        return place(step, self._config["cycle_steps"], self._config["cycle_multiplier"], getattr(self, "_table", None))


@base.register
class PolynomialRestarts(CosineRestarts):
    """Polynomial decay with warm restarts, cycles placed exactly as in CosineRestarts (timm's `PolyLRScheduler`).

    Cycles, warmups and peaks are CosineRestarts's; after its warmup each cycle decays as
    lr = min_lr + (peak_i - min_lr) * (1 - x ** k_decay) ** power, x = (t - W_i) / (L_i - W_i).
    With warmup_prefix=False each cycle's warmup is laid over the start of its decay, x = t / L_i, as
    CosineRestarts's; with max_cycles=1 that is timm's one-cycle `PolyLRScheduler(warmup_prefix=False,
    warmup_lr_init=min_lr)`. Over several cycles timm warms up once, here every cycle (see CosineRestarts).
    timm's `PolyLRScheduler` defaults to power=0.5; here power defaults to 1 (linear), as `polynomial` does.
    timm's `PolyLRScheduler` lets a decayed peak fall below lr_min; here peaks stop at min_lr.
    timm's `cycle_limit` defaults to 1 (one cycle, then lr_min); max_cycles defaults to None (unlimited).
    timm's `warmup_prefix` defaults to False; warmup_prefix defaults to True (each decay starts after its warmup).

    >>> s = PolynomialRestarts(initial_lr=1.0, min_lr=0.0, warmup_steps=0, cycle_steps=10, cycle_multiplier=2.0,
    ...                        power=2.0)
    >>> [round(float(s(x)), 4) for x in (0, 5, 10, 20, 30)]
    [1.0, 0.25, 1.0, 0.25, 1.0]
    """

    _LATER = {"warmup_prefix": True}

    def __init__(self, initial_lr, min_lr, warmup_steps, cycle_steps, cycle_multiplier=1.0, peak_decay=1.0,
                 max_cycles=None, k_decay=1.0, warmup_power=1.0, power=1.0, warmup_prefix=True):
        config = self._checked(initial_lr, min_lr, warmup_steps, cycle_steps, cycle_multiplier, peak_decay,
                               max_cycles, k_decay, warmup_power, warmup_prefix)
        warmup_prefix = config.pop("warmup_prefix")
        base.Schedule.__init__(self, **config, power=validation.real("power", power, low=0.0, low_open=True),
                               warmup_prefix=warmup_prefix)

    def _decay(self, peak, floor, x):
        return base.linear(floor, peak, tf.pow(tf.maximum(1.0 - x, 0.0), self._config["power"]))


CYCLIC_MODES = ("triangular", "triangular2", "exp_range")


@base.register
class Cyclic(base.Schedule):
    """Triangular cycles between min_lr and initial_lr (torch's `CyclicLR`), cycles placed as in CosineRestarts.

    Cycle i lasts L_i = (up_steps + down_steps) * m**i (m = cycle_multiplier, 1 in torch); at position t in it
    the rate climbs for U_i = up_steps * m**i steps and falls for the rest:
    lr(s) = min_lr + (initial_lr - min_lr) * scale * (t / U_i if t < U_i else (L_i - t) / (L_i - U_i)),
    scale = 1 (mode "triangular"), 0.5 ** i ("triangular2": the height halves every cycle) or gamma ** s
    ("exp_range", s the step). down_steps defaults to up_steps. torch's `base_lr` and `max_lr` are min_lr and
    initial_lr, its `step_size_up` / `step_size_down` up_steps / down_steps.

    >>> s = Cyclic(initial_lr=1.0, min_lr=0.0, up_steps=4, down_steps=6, mode="triangular2")
    >>> [round(float(s(x)), 4) for x in (0, 2, 4, 7, 10, 14, 20)]
    [0.0, 0.5, 1.0, 0.5, 0.0, 0.5, 0.0]
    """

    def __init__(self, initial_lr, min_lr, up_steps, down_steps=None, mode="triangular", gamma=1.0,
                 cycle_multiplier=1.0):
        initial_lr, min_lr = validation.rates(initial_lr, min_lr)
        up_steps = validation.whole("up_steps", up_steps, low=1)
        if down_steps is not None:
            down_steps = validation.whole("down_steps", down_steps, low=1)
        mode = validation.choice("mode", mode, CYCLIC_MODES)
        gamma = validation.real("gamma", gamma, low=0.0, high=1.0, low_open=True)
        cycle_multiplier = validation.real("cycle_multiplier", cycle_multiplier, low=1.0)
        if cycle_multiplier > 1.0:
            cycle_steps = up_steps + (up_steps if down_steps is None else down_steps)
            try:
                self._table = cycle_starts(cycle_steps, cycle_multiplier)
            except validation.ParameterError:
                raise validation.ParameterError(
                    "cycle_multiplier", f"1, or large enough that at most {MAX_TABULATED_CYCLES} cycles of "
                    f"up_steps + down_steps = {cycle_steps} start below step 2**53", cycle_multiplier) from None
        super().__init__(initial_lr=initial_lr, min_lr=min_lr, up_steps=up_steps, down_steps=down_steps, mode=mode,
                         gamma=gamma, cycle_multiplier=cycle_multiplier)

    def rate(self, step):
        c = self._config
        up = c["up_steps"]
        cycle_steps = up + (up if c["down_steps"] is None else c["down_steps"])
        cycle, position, length = place(step, cycle_steps, c["cycle_multiplier"], getattr(self, "_table", None))
        rise = length * (up / cycle_steps)
        height = tf.where(position < rise, position / rise, (length - position) / (length - rise))
        if c["mode"] == "triangular2":
            height = height * tf.pow(tf.constant(0.5, tf.float64), base.as_float(cycle))
        elif c["mode"] == "exp_range":
            height = height * tf.pow(tf.constant(c["gamma"], tf.float64), base.as_float(step))
        return base.linear(c["min_lr"], c["initial_lr"], height)
