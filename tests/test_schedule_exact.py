"""Cycle placement of cosine_restarts checked against exact rational arithmetic, up to step 2**31 - 1."""

import bisect
import functools
import math
from fractions import Fraction

import numpy as np
import pytest
import tensorflow as tf

import schedules
from schedules import restarts

LAST = 2**31 - 1


class _Periodic:
    """The cycles of cycle_multiplier 1, (k c, c) as Fractions, made when read: there are 2^31 / c of them."""

    def __init__(self, c):
        self.c, self.count = c, LAST // c + 1

    def __len__(self):
        return self.count

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(self.count))]
        k = k + self.count if k < 0 else k
        if not 0 <= k < self.count:
            raise IndexError(k)
        return Fraction(k * self.c), Fraction(self.c)


@functools.lru_cache(maxsize=2)
def exact_cycles(c, m):
    """[(S_k, L_k)] as Fractions for every cycle starting at or below LAST."""
    if m == 1:
        return _Periodic(c)
    m = Fraction(str(m))
    out, start, length = [], Fraction(0), Fraction(c)
    while start <= LAST:
        out.append((start, length))
        start, length = start + length, length * m
    return out


def cycle_of(cycles, step):
    """The index of the cycle whole step `step` is in, by exact comparison with the Fraction starts (which
    increase: the last start <= step)."""
    return bisect.bisect_right(cycles, int(step), key=lambda cycle: cycle[0]) - 1


def reference(c, m, w, steps, initial=1.0, minimum=0.0):
    """Float64 rates with each step placed by exact comparison against the Fraction cycle starts."""
    cycles = exact_cycles(c, m) if m != 1 else None
    out = []
    for step in map(int, steps):
        if cycles is None:
            start, length = Fraction(step // c * c), Fraction(c)
        else:  # exact: Fraction <= int
            start, length = cycles[cycle_of(cycles, step)]
        warm = float(length * w / c)
        t = float(step - start)
        length = float(length)
        if t < warm:
            out.append(minimum + (initial - minimum) * t / warm)
        else:
            out.append(minimum + 0.5 * (initial - minimum) * (1 + math.cos(math.pi * (t - warm) / (length - warm))))
    return np.array(out)


def boundary_steps(c, m):
    """The last step before and the first step in every cycle, near and far out."""
    steps = set()
    for start, _ in exact_cycles(c, m)[1:]:
        first = math.ceil(start)
        steps.update(s for s in (first - 1, first, first + 1) if 0 <= s <= LAST)
    return np.array(sorted(steps), dtype=np.int64)


@pytest.mark.parametrize("c,m", [(1000, 2), (1000, 1.2), (10, 3), (1, 2), (2**20, 1.5), (7, 1.07), (999, 1.3),
                                 (12345, 1), (50, 1.01)])
def test_every_restart_up_to_2_31_is_placed_exactly(c, m):
    lr = schedules.get("cosine_restarts", initial_lr=1.0, min_lr=0.0, warmup_steps=0, cycle_steps=c,
                       cycle_multiplier=m)
    steps = boundary_steps(c, m) if m != 1 else np.array(
        [k * c + d for k in (1, 2, 1000, LAST // c) for d in (-1, 0, 1) if k * c + d <= LAST], dtype=np.int64)
    ours = lr(steps).numpy().astype(np.float64)
    expected = reference(c, m, 0, steps)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)
    placed = lr._place(tf.constant(steps))[0].numpy()
    np.testing.assert_array_equal(placed, steps // c if m == 1 else [cycle_of(exact_cycles(c, m), s) for s in steps])
    # Integral restart points are the new cycle's first step: the peak (warmup_steps=0).
    restarts = [int(start) for start, _ in exact_cycles(c, m)[1:]
                if start.denominator == 1] if m != 1 else [k * c for k in (1, 2, 1000, LAST // c)]
    assert restarts
    np.testing.assert_allclose(ours[np.searchsorted(steps, restarts)], 1.0, atol=1e-6)


def test_peer_failure_points():
    keras_like = schedules.get("cosine_restarts", initial_lr=1.0, min_lr=0.0, warmup_steps=0, cycle_steps=1000,
                               cycle_multiplier=2.0)
    assert float(keras_like(8_191_000)) == pytest.approx(1.0)  # a restart (Keras: 0)
    assert float(keras_like(4_094_999)) < 1e-6  # the last step of a cycle (Keras: the peak)
    tripled = schedules.get("cosine_restarts", initial_lr=1.0, min_lr=0.0, warmup_steps=0, cycle_steps=10,
                            cycle_multiplier=3.0)
    assert float(tripled(1210)) == pytest.approx(1.0)  # 10 + 30 + 90 + 270 + 810 (float64 log formula: old cycle)
    assert float(tripled(1209)) < 1e-4


def test_far_out_restart_with_fractional_multiplier():
    # 2**20 * (1.5**17 - 1) / 0.5 = 2,064,145,456 exactly: a restart far out with m = 3/2.
    lr = schedules.get("cosine_restarts", initial_lr=1.0, min_lr=0.1, warmup_steps=2**16, cycle_steps=2**20,
                       cycle_multiplier=1.5)
    values = lr(np.array([2_064_145_455, 2_064_145_456, 2_064_145_457], dtype=np.int64)).numpy()
    assert values[0] == pytest.approx(0.1, abs=1e-6)  # end of cycle 16
    assert values[1] == pytest.approx(0.1, abs=1e-7)  # warmup start of cycle 17
    warm = 2**16 * 1.5**17
    assert values[2] == pytest.approx(0.1 + 0.9 / warm, rel=1e-4)


@pytest.mark.parametrize("c,m,w", [(1000, 1.2, 100), (333, 1.7, 33), (5000, 1, 500)])
def test_random_steps_match_exact_reference(c, m, w):
    rng = np.random.default_rng(0)
    steps = np.concatenate([rng.integers(0, 50_000, 300), rng.integers(0, LAST, 300), [0, LAST]])
    lr = schedules.get("cosine_restarts", initial_lr=1.0, min_lr=0.0, warmup_steps=w, cycle_steps=c,
                       cycle_multiplier=m)
    np.testing.assert_allclose(lr(steps).numpy(), reference(c, m, w, steps), rtol=1e-5, atol=1e-6)


def test_fractional_restart_is_sampled_from_the_continuous_curve():
    # S_5 = 1000 * (1.2**5 - 1) / 0.2 = 7441.6: step 7442 is 0.4 into cycle 5 (length 2488.32).
    lr = schedules.get("cosine_restarts", initial_lr=1.0, min_lr=0.0, warmup_steps=0, cycle_steps=1000,
                       cycle_multiplier=1.2)
    assert float(lr(7442)) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.4 / 2488.32)), rel=1e-7)
    assert float(lr(7441)) == pytest.approx(0.5 * (1 + math.cos(math.pi * (7441 - 5368) / 2073.6)), abs=1e-7)


def test_max_cycles_then_min_lr():
    lr = schedules.get("cosine_restarts", initial_lr=1.0, min_lr=0.05, warmup_steps=0, cycle_steps=100,
                       cycle_multiplier=1.5, max_cycles=3)
    # cycles: [0, 100), [100, 250), [250, 475); from 475 on, min_lr
    values = lr(np.array([474, 475, 10**6, LAST], dtype=np.int64)).numpy()
    assert values[0] > 0.05
    np.testing.assert_allclose(values[1:], 0.05, rtol=1e-6)


def polynomial_reference(c, m, power, steps, initial=1.0, minimum=0.0):
    """polynomial_restarts (warmup_steps=0) with each step placed exactly against the Fraction cycle starts."""
    cycles = exact_cycles(c, m)
    out = []
    for step in map(int, steps):
        start, length = cycles[cycle_of(cycles, step)]
        out.append(minimum + (initial - minimum) * (1 - float((step - start) / length)) ** power)
    return np.array(out)


@pytest.mark.parametrize("c,m,power", [(1000, 2, 1.0), (1000, 1.2, 2.0), (10, 3, 0.5), (7, 1.07, 1.0),
                                       (2**20, 1.5, 3.0)])
def test_polynomial_restarts_are_placed_exactly_up_to_2_31(c, m, power):
    lr = schedules.get("polynomial_restarts", initial_lr=1.0, min_lr=0.0, warmup_steps=0, cycle_steps=c,
                       cycle_multiplier=m, power=power)
    steps = boundary_steps(c, m)
    ours = lr(steps).numpy().astype(np.float64)
    np.testing.assert_allclose(ours, polynomial_reference(c, m, power, steps), rtol=1e-5, atol=1e-6)
    placed = lr._place(tf.constant(steps))[0].numpy()
    np.testing.assert_array_equal(placed, [cycle_of(exact_cycles(c, m), s) for s in steps])
    restarts = [int(start) for start, _ in exact_cycles(c, m)[1:] if start.denominator == 1]
    assert restarts
    np.testing.assert_allclose(ours[np.searchsorted(steps, restarts)], 1.0, atol=1e-6)
    assert float(lr(1210 if (c, m) == (10, 3) else restarts[-1])) == pytest.approx(1.0)


def cyclic_reference(up, down, m, mode, steps, initial=1.0, minimum=0.0):
    """cyclic's rate with each step's cycle and position in it computed in Fractions."""
    cycles = exact_cycles(up + down, m)
    out = []
    for step in map(int, steps):
        k = cycle_of(cycles, step)
        start, length = cycles[k]
        rise = length * Fraction(up, up + down)
        t = step - start
        height = t / rise if t < rise else (length - t) / (length - rise)
        scale = Fraction(1, 2**k) if mode == "triangular2" else 1
        out.append(minimum + (initial - minimum) * float(height * scale))
    return np.array(out)


@pytest.mark.parametrize("up,down,m,mode", [(500, 500, 1, "triangular"), (300, 700, 2, "triangular"),
                                            (4, 6, 3, "triangular2"), (1000, 200, 1.2, "triangular"),
                                            (3, 4, 1.07, "triangular")])
def test_cyclic_cycles_are_placed_exactly_up_to_2_31(up, down, m, mode):
    lr = schedules.get("cyclic", initial_lr=1.0, min_lr=0.0, up_steps=up, down_steps=down, mode=mode,
                       cycle_multiplier=m)
    c = up + down
    steps = boundary_steps(c, m) if m != 1 else np.array(
        [k * c + d for k in (1, 2, 1000, LAST // c) for d in (-1, 0, 1) if k * c + d <= LAST], dtype=np.int64)
    ours = lr(steps).numpy().astype(np.float64)
    expected = cyclic_reference(up, down, m, mode, steps)
    # Relative only: next to a cycle start the triangle is near min_lr = 0 on both sides, where any absolute
    # tolerance would hide a start placed one step off far out (1 / (L - U) is ~1e-9 there).
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=0)
    # Each boundary step is in the cycle the Fractions put it in (the schedule's own table and placement).
    cycles = exact_cycles(c, m)
    placed = restarts.place(tf.constant(steps), c, float(m), getattr(lr, "_table", None))[0].numpy()
    np.testing.assert_array_equal(placed, [cycle_of(cycles, s) for s in steps])
    # At an integral start S_k: the step before is one step short of the end of cycle k - 1 (1 / (L - U) of its
    # height), the start is min_lr exactly, the step after one step up (1 / U of its height).
    scale = (lambda i: Fraction(1, 2**i)) if mode == "triangular2" else (lambda i: 1)
    rise = Fraction(up, up + down)
    checked = 0
    for k in sorted({cycle_of(cycles, s) for s in steps} - {0}):
        start, length = cycles[k]
        if start.denominator != 1 or int(start) not in set(steps.tolist()) or start + 1 > LAST:
            continue
        i = np.searchsorted(steps, int(start))
        assert steps[i - 1] == start - 1 and steps[i + 1] == start + 1
        assert ours[i] == 0.0
        assert ours[i - 1] == pytest.approx(float(scale(k - 1) / (cycles[k - 1][1] * (1 - rise))), rel=1e-5, abs=0)
        assert ours[i + 1] == pytest.approx(float(scale(k) / (length * rise)), rel=1e-5, abs=0)
        checked += 1
    assert checked >= 1
