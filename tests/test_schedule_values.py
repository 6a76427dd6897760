"""Every schedule against independent float64 closed forms, Keras's own schedules and a port of the seed."""

import math

import keras
import numpy as np
import pytest

import schedules

STEPS = np.arange(0, 5001, dtype=np.int64)


def rates(schedule, steps=STEPS):
    out = schedule(steps).numpy()
    assert out.dtype == np.float32 and out.shape == steps.shape
    return out.astype(np.float64)


def cosine_closed(initial, minimum, w, total, s):
    s = s.astype(np.float64)
    warm = minimum + (initial - minimum) * s / max(w, 1)
    frac = np.clip((s - w) / (total - w), 0, 1)
    return np.where(s < w, warm, minimum + 0.5 * (initial - minimum) * (1 + np.cos(np.pi * frac)))


def test_constant():
    np.testing.assert_allclose(rates(schedules.get("constant", initial_lr=0.3)), 0.3, rtol=1e-7)


def test_piecewise_constant_matches_keras():
    ours = schedules.get("piecewise_constant", boundaries=[100, 1000, 3000], values=[1.0, 0.5, 0.1, 0.01])
    theirs = keras.optimizers.schedules.PiecewiseConstantDecay([100, 1000, 3000], [1.0, 0.5, 0.1, 0.01])
    np.testing.assert_array_equal(rates(ours), np.array([float(theirs(int(s))) for s in STEPS]))


@pytest.mark.parametrize("staircase", [False, True])
def test_exponential_matches_keras_and_closed_form(staircase):
    ours = schedules.get("exponential", initial_lr=0.1, decay_steps=700, decay_rate=0.6, staircase=staircase)
    theirs = keras.optimizers.schedules.ExponentialDecay(0.1, 700, 0.6, staircase=staircase)
    np.testing.assert_allclose(rates(ours), theirs(STEPS).numpy(), rtol=2e-6)
    exponent = STEPS / 700.0
    exponent = np.floor(exponent) if staircase else exponent
    np.testing.assert_allclose(rates(ours), 0.1 * 0.6**exponent, rtol=1e-6)


def test_exponential_floor():
    ours = schedules.get("exponential", initial_lr=1.0, decay_steps=100, decay_rate=0.5, min_lr=0.05)
    np.testing.assert_allclose(rates(ours), np.maximum(0.5 ** (STEPS / 100.0), 0.05), rtol=1e-6)


@pytest.mark.parametrize("staircase", [False, True])
def test_exponential_growth_to_max_lr(staircase):
    # An LR range test: from 1e-7, ten times larger every 500 steps, capped at 10 (optax's end_value for growth).
    ours = schedules.get("exponential", initial_lr=1e-7, decay_steps=500, decay_rate=10.0, staircase=staircase,
                         max_lr=10.0)
    exponent = np.floor(STEPS / 500) if staircase else STEPS / 500
    np.testing.assert_allclose(rates(ours), np.minimum(1e-7 * 10.0**exponent, 10.0), rtol=1e-6)
    assert rates(ours)[4000] == 10.0 and float(ours(2**53 - 1)) == 10.0


def test_exponential_max_lr_caps_nothing_when_decaying():
    ours = schedules.get("exponential", initial_lr=0.1, decay_steps=700, decay_rate=0.6, max_lr=0.1)
    np.testing.assert_allclose(rates(ours), 0.1 * 0.6 ** (STEPS / 700), rtol=1e-6)
    assert "max_lr" not in schedules.get("exponential", initial_lr=0.1, decay_steps=7, decay_rate=0.6).get_config()


@pytest.mark.parametrize("staircase", [False, True])
def test_inverse_time_matches_keras_and_closed_form(staircase):
    ours = schedules.get("inverse_time", initial_lr=0.2, decay_steps=300, decay_rate=1.5, staircase=staircase)
    theirs = keras.optimizers.schedules.InverseTimeDecay(0.2, 300, 1.5, staircase=staircase)
    np.testing.assert_allclose(rates(ours), theirs(STEPS).numpy(), rtol=2e-6)
    time = np.floor(STEPS / 300) if staircase else STEPS / 300
    np.testing.assert_allclose(rates(ours), 0.2 / (1 + 1.5 * time), rtol=1e-6)


@pytest.mark.parametrize("cycle", [False, True])
@pytest.mark.parametrize("power", [1.0, 2.0, 0.5])
def test_polynomial_matches_keras_and_closed_form(cycle, power):
    ours = schedules.get("polynomial", initial_lr=0.01, min_lr=1e-4, decay_steps=900, power=power, cycle=cycle)
    theirs = keras.optimizers.schedules.PolynomialDecay(0.01, 900, end_learning_rate=1e-4, power=power,
                                                        cycle=cycle)
    # Keras forms 1 - step / period in float32; power < 1 magnifies that rounding next to the period's end.
    np.testing.assert_allclose(rates(ours), theirs(STEPS).numpy(), rtol=1e-5, atol=1e-6 * 0.01)
    s = STEPS.astype(np.float64)
    if cycle:
        period = 900 * np.maximum(np.ceil(s / 900), 1)
    else:
        period, s = 900.0, np.minimum(s, 900)
    np.testing.assert_allclose(rates(ours), (0.01 - 1e-4) * (1 - s / period) ** power + 1e-4, rtol=1e-6)


def test_polynomial_cycle_ends_each_period_at_min_lr():
    ours = rates(schedules.get("polynomial", initial_lr=1.0, min_lr=0.1, decay_steps=1000, cycle=True))
    for multiple in range(1000, 4001, 1000):
        assert ours[multiple] == pytest.approx(0.1, abs=1e-7)
        # the next step starts the next, longer period: back up to (1 - s / period) of the range.
        period = 1000 * (multiple // 1000 + 1)
        assert ours[multiple + 1] == pytest.approx(0.9 * (1 - (multiple + 1) / period) + 0.1, rel=1e-6)


@pytest.mark.parametrize("warmup", [0, 250])
def test_cosine_matches_keras_and_closed_form(warmup):
    ours = schedules.get("cosine", initial_lr=1e-3, min_lr=1e-5, warmup_steps=warmup, total_steps=4000)
    np.testing.assert_allclose(rates(ours), cosine_closed(1e-3, 1e-5, warmup, 4000, STEPS), rtol=1e-6)
    # Keras: warm up from initial_learning_rate to warmup_target, then decay to alpha * warmup_target.
    theirs = keras.optimizers.schedules.CosineDecay(
        1e-5 if warmup else 1e-3, decay_steps=4000 - warmup, alpha=1e-2,
        warmup_target=1e-3 if warmup else None, warmup_steps=warmup)
    sample = STEPS[::7]  # Keras's warmup branch takes scalar steps only
    np.testing.assert_allclose(rates(ours, sample), [float(theirs(int(s))) for s in sample], rtol=1e-5)


def test_cosine_stays_at_min_lr_after_total_steps():
    ours = rates(schedules.get("cosine", initial_lr=1e-3, min_lr=1e-5, warmup_steps=100, total_steps=1000))
    np.testing.assert_allclose(ours[1000:], 1e-5, rtol=1e-6)


def test_one_cycle_closed_form():
    ours = schedules.get("one_cycle", initial_lr=0.1, min_lr=0.004, total_steps=4000, warmup_fraction=0.3)
    s = STEPS.astype(np.float64)
    peak = 1200.0
    rise = 0.004 + (0.1 - 0.004) * 0.5 * (1 - np.cos(np.pi * s / peak))
    fall = 0.004 + (0.1 - 0.004) * 0.5 * (1 + np.cos(np.pi * np.clip((s - peak) / (4000 - peak), 0, 1)))
    np.testing.assert_allclose(rates(ours), np.where(s < peak, rise, fall), rtol=1e-6)
    assert rates(ours)[1200] == pytest.approx(0.1, rel=1e-7)


@pytest.mark.parametrize("shape", ["linear", "cosine", "sqrt"])
def test_warmup_stable_decay_closed_form(shape):
    ours = schedules.get("warmup_stable_decay", initial_lr=0.02, min_lr=0.001, warmup_steps=300,
                         stable_steps=2500, decay_steps=1200, decay_shape=shape)
    s = STEPS.astype(np.float64)
    x = np.clip((s - 2800) / 1200, 0, 1)
    remaining = {"linear": 1 - x, "cosine": 0.5 * (1 + np.cos(np.pi * x)), "sqrt": 1 - np.sqrt(x)}[shape]
    expected = np.where(s < 300, 0.001 + 0.019 * s / 300, 0.001 + 0.019 * remaining)
    np.testing.assert_allclose(rates(ours), expected, rtol=1e-6)


def restarts_closed(initial, minimum, w, c, m, peak_decay, s, max_cycles=None):
    """Float64 reference with the cycle found by walking exact integer cycle starts (whole lengths only)."""
    out = []
    for step in s:
        start, length, warm, k = 0, c, w, 0
        while step >= start + length:
            start, length, warm, k = start + length, length * m, warm * m, k + 1
        if max_cycles is not None and k >= max_cycles:
            out.append(minimum)
            continue
        peak = max(initial * peak_decay**k, minimum)
        t = step - start
        if t < warm:
            out.append(minimum + (peak - minimum) * t / warm)
        else:
            out.append(minimum + 0.5 * (peak - minimum) * (1 + math.cos(math.pi * (t - warm) / (length - warm))))
    return np.array(out)


@pytest.mark.parametrize("w,c,m,peak_decay,max_cycles", [
    (0, 500, 1, 1.0, None), (100, 500, 1, 0.8, None), (50, 300, 2, 1.0, None), (40, 200, 3, 0.5, None),
    (20, 100, 2, 0.9, 4), (0, 700, 1, 1.0, 3)])
def test_cosine_restarts_closed_form(w, c, m, peak_decay, max_cycles):
    ours = schedules.get("cosine_restarts", initial_lr=1e-2, min_lr=1e-4, warmup_steps=w, cycle_steps=c,
                         cycle_multiplier=float(m), peak_decay=peak_decay, max_cycles=max_cycles)
    expected = restarts_closed(1e-2, 1e-4, w, c, m, peak_decay, STEPS, max_cycles)
    np.testing.assert_allclose(rates(ours), expected, rtol=1e-6, atol=1e-12)


def test_cosine_restarts_peaks_do_not_fall_below_min_lr():
    ours = rates(schedules.get("cosine_restarts", initial_lr=1.0, min_lr=0.2, warmup_steps=0, cycle_steps=100,
                               peak_decay=0.1))
    assert ours.min() >= 0.2 - 1e-7
    np.testing.assert_allclose(ours[200:], 0.2, rtol=1e-6)  # 1.0 * 0.1**2 < min_lr from cycle 2 on


@pytest.mark.parametrize("t_mul,m_mul,alpha", [(1.0, 1.0, 0.01), (2.0, 1.0, 0.01), (2.0, 0.7, 0.0),
                                               (1.0, 0.5, 0.0)])
def test_cosine_restarts_matches_keras_below_50000(t_mul, m_mul, alpha):
    steps = np.arange(0, 50000, dtype=np.int64)
    theirs = keras.optimizers.schedules.CosineDecayRestarts(1e-3, 1000, t_mul=t_mul, m_mul=m_mul, alpha=alpha)
    ours = schedules.get("cosine_restarts", initial_lr=1e-3, min_lr=alpha * 1e-3, warmup_steps=0,
                         cycle_steps=1000, cycle_multiplier=t_mul, peak_decay=m_mul)
    np.testing.assert_allclose(rates(ours, steps), theirs(steps).numpy(), rtol=2e-4, atol=2e-9)


def test_cosine_restarts_agrees_with_keras_fractional_multiplier_except_where_keras_misplaces():
    steps = np.arange(0, 20000, dtype=np.int64)
    theirs = keras.optimizers.schedules.CosineDecayRestarts(1.0, 1000, t_mul=1.2, alpha=0.0)(steps).numpy()
    ours = rates(schedules.get("cosine_restarts", initial_lr=1.0, min_lr=0.0, warmup_steps=0, cycle_steps=1000,
                               cycle_multiplier=1.2), steps)
    restarts = [1000, 2200, 3640, 5368]  # the whole-number 1000 * (1.2**k - 1) / 0.2
    differ = np.flatnonzero(~np.isclose(ours, theirs, rtol=1e-3, atol=1e-5))
    assert set(differ) <= set(restarts[1:])  # Keras's float32 log formula can put these in the old cycle
    np.testing.assert_allclose(ours[restarts], 1.0)
    assert np.all(ours[np.array(restarts) - 1] < 1e-5)


# A port of the seed tutorial's classes, counters and float32 math included: called once per step, in order.
class SeedPolynomialDecay:
    def __init__(self, initial_lr, decay_period, power, min_lr, cycle):
        self.initial_lr, self.decay_period = np.float32(initial_lr), np.float32(decay_period)
        self.power, self.min_lr, self.cycle = power, np.float32(min_lr), cycle

    def __call__(self, step):
        step = np.float32(step)
        if self.cycle is False:
            current_step = np.where(step > self.decay_period, self.decay_period, step)
            return (self.initial_lr - self.min_lr) * (1 - current_step / self.decay_period) ** self.power + self.min_lr
        current_period = self.decay_period * np.ceil(step / self.decay_period)
        return ((self.initial_lr - self.min_lr) * (1 - step / (current_period + np.float32(1e-7))) ** self.power
                + self.min_lr)


class SeedCosineWarmupDecay:
    def __init__(self, initial_lr, min_lr, warmup_step, total_step):
        self.initial_lr, self.min_lr = np.float32(initial_lr), np.float32(min_lr)
        self.warmup_step, self.total_step = warmup_step, total_step

    def __call__(self, step):
        step = np.float32(step)
        decayed = self.min_lr + np.float32(0.5) * (self.initial_lr - self.min_lr) * (
            1 + np.cos(np.float32(math.pi) * (step - self.warmup_step) / (self.total_step - self.warmup_step)))
        k = (self.initial_lr - self.min_lr) / self.warmup_step
        warmup = k * step + self.min_lr
        return np.where(step < self.warmup_step, warmup, decayed)


class SeedMultiCycleCosineWarmupDecay:
    def __init__(self, initial_lr, min_lr, warmup_step, total_step, multi):
        self.initial_lr, self.min_lr = np.float32(initial_lr), np.float32(min_lr)
        self.warmup_step, self.total_step, self.multi = warmup_step, total_step, multi
        self.step = 0

    def __call__(self, step):  # the step argument is ignored, as in the seed
        if self.step >= self.total_step:
            self.warmup_step = self.warmup_step * (1 + self.multi)
            self.total_step = self.total_step * (1 + self.multi)
            self.step = 0
        decayed = self.min_lr + np.float32(0.5) * (self.initial_lr - self.min_lr) * (
            1 + np.cos(np.float32(math.pi) * (self.step - self.warmup_step) / (self.total_step - self.warmup_step)))
        k = (self.initial_lr - self.min_lr) / self.warmup_step
        warmup = k * self.step + self.min_lr
        lr = np.where(self.step < self.warmup_step, warmup, decayed)
        self.step = self.step + 1
        return lr


def seed_rates(seed_schedule, steps=STEPS):
    return np.array([float(seed_schedule(int(s))) for s in steps])


@pytest.mark.parametrize("cycle", [False, True])
@pytest.mark.parametrize("power", [1.0, 0.5, 3.0])
def test_polynomial_equals_seed(cycle, power):
    seed = SeedPolynomialDecay(1e-3, 800, power, 1e-5, cycle)
    ours = schedules.get("polynomial", initial_lr=1e-3, min_lr=1e-5, decay_steps=800, power=power, cycle=cycle)
    # The seed works in float32: power < 1 magnifies its rounding of 1 - step / period.
    np.testing.assert_allclose(rates(ours), seed_rates(seed), rtol=2e-5, atol=1e-6 * 1e-3)


def test_cosine_equals_seed_until_total_steps():
    seed = SeedCosineWarmupDecay(1e-3, 1e-5, 300, 4000)
    ours = schedules.get("cosine", initial_lr=1e-3, min_lr=1e-5, warmup_steps=300, total_steps=4000)
    np.testing.assert_allclose(rates(ours)[:4001], seed_rates(seed)[:4001], rtol=2e-5)
    # After total_steps the seed climbs again; ours stays at min_lr.
    assert seed_rates(seed, [5000])[0] > 1e-4 and rates(ours)[5000] == pytest.approx(1e-5)


@pytest.mark.parametrize("warmup,total,multi", [(200, 1000, 1), (50, 300, 2), (100, 700, 0)])
def test_cosine_restarts_equals_seed_multi_cycle_class(warmup, total, multi):
    seed = SeedMultiCycleCosineWarmupDecay(1e-3, 1e-6, warmup, total, multi)
    ours = schedules.get("cosine_restarts", initial_lr=1e-3, min_lr=1e-6, warmup_steps=warmup,
                         cycle_steps=total, cycle_multiplier=1 + multi)
    np.testing.assert_allclose(rates(ours), seed_rates(seed), rtol=2e-5, atol=1e-11)


def test_warmup_combinator_closed_form():
    inner = schedules.get("exponential", initial_lr=0.5, decay_steps=100, decay_rate=0.9)
    ours = schedules.warmup(inner, warmup_steps=400, start_lr=0.01)
    s = STEPS.astype(np.float64)
    expected = np.where(s < 400, 0.01 + (0.5 - 0.01) * s / 400, 0.5 * 0.9 ** (np.maximum(s - 400, 0) / 100))
    np.testing.assert_allclose(rates(ours), expected, rtol=1e-6)


def test_warmup_combinator_works_on_keras_schedules():
    inner = keras.optimizers.schedules.CosineDecay(0.1, 1000)
    ours = rates(schedules.warmup(inner, warmup_steps=100), np.arange(0, 1200, dtype=np.int64))
    np.testing.assert_allclose(ours[:100], 0.1 * np.arange(100) / 100, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours[100:], inner(np.arange(0, 1100)).numpy(), rtol=1e-6)


def test_sequence_restarts_step_count_in_each_phase():
    first = schedules.get("constant", initial_lr=0.3)
    second = schedules.get("cosine", initial_lr=0.3, min_lr=0.0, warmup_steps=0, total_steps=1000)
    third = schedules.get("polynomial", initial_lr=0.01, min_lr=0.0, decay_steps=2000)
    ours = rates(schedules.sequence([(first, 500), (second, 1000), (third, None)]))
    s = STEPS.astype(np.float64)
    expected = np.select(
        [s < 500, s < 1500],
        [np.full_like(s, 0.3), 0.15 * (1 + np.cos(np.pi * np.clip((s - 500) / 1000, 0, 1)))],
        0.01 * (1 - np.minimum(s - 1500, 2000) / 2000))
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-12)
