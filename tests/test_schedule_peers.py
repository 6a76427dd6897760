"""The schedules of issue 18 against their peers' formulas, re-derived here in float64 from the peers' documentation.

optax, torch.optim.lr_scheduler, timm and TF Model Garden are not installed: each `*_reference` below is the
peer's documented definition written out in plain Python, one step at a time, never values taken from stepwise.
Where a peer's definition differs on purpose (torch's OneCycleLR counts its phases one step early, timm lets a
decayed peak fall below lr_min), the test says how the two map onto each other.
"""

import math
from fractions import Fraction

import numpy as np
import pytest

import schedules

STEPS = np.arange(0, 5001, dtype=np.int64)


def rates(schedule, steps=STEPS):
    out = schedule(steps).numpy()
    assert out.dtype == np.float32 and out.shape == steps.shape
    return out.astype(np.float64)


# ---------------------------------------------------------------------------------------------------- optax

def optax_exponential_decay_reference(init_value, transition_steps, decay_rate, staircase, end_value, count):
    p = count / transition_steps
    if staircase:
        p = math.floor(p)
    decayed = init_value * decay_rate**p
    if end_value is not None:  # a lower bound when decaying, an upper bound when growing
        decayed = max(decayed, end_value) if decay_rate < 1 else min(decayed, end_value)
    return decayed


@pytest.mark.parametrize("staircase", [False, True])
def test_exponential_growth_is_optax_exponential_decay_with_rate_above_1(staircase):
    ours = schedules.get("exponential", initial_lr=1e-6, decay_steps=400, decay_rate=7.0, staircase=staircase,
                         max_lr=3.0)
    theirs = [optax_exponential_decay_reference(1e-6, 400, 7.0, staircase, 3.0, int(s)) for s in STEPS]
    np.testing.assert_allclose(rates(ours), theirs, rtol=1e-6)


def optax_warmup_cosine_decay_reference(init_value, peak_value, warmup_steps, decay_steps, end_value, exponent,
                                        count):
    """optax.warmup_cosine_decay_schedule: linear_schedule then cosine_decay_schedule(alpha=end/peak), joined."""
    if count < warmup_steps:
        return init_value + (peak_value - init_value) * count / warmup_steps
    t = min(count - warmup_steps, decay_steps - warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * t / (decay_steps - warmup_steps)))
    alpha = end_value / peak_value
    return peak_value * ((1 - alpha) * cosine**exponent + alpha)


@pytest.mark.parametrize("exponent", [1.0, 2.0, 0.5, 3.7])
def test_cosine_exponent_is_optax_warmup_cosine_decay(exponent):
    ours = schedules.get("cosine", initial_lr=2e-3, min_lr=1e-5, warmup_steps=300, total_steps=4000,
                         exponent=exponent)
    theirs = [optax_warmup_cosine_decay_reference(1e-5, 2e-3, 300, 4000, 1e-5, exponent, int(s)) for s in STEPS]
    np.testing.assert_allclose(rates(ours), theirs, rtol=1e-6)


def optax_sgdr_reference(cosine_kwargs, count):
    """optax.sgdr_schedule: warmup_cosine_decay_schedules joined, each starting where the last one's steps end."""
    start = 0
    for i, kwargs in enumerate(cosine_kwargs):
        if count < start + kwargs["decay_steps"] or i == len(cosine_kwargs) - 1:
            return optax_warmup_cosine_decay_reference(kwargs["init_value"], kwargs["peak_value"],
                                                       kwargs["warmup_steps"], kwargs["decay_steps"],
                                                       kwargs["end_value"], 1.0, count - start)
        start += kwargs["decay_steps"]


@pytest.mark.parametrize("m,peak_decay", [(1, 1.0), (2, 0.8)])
def test_cosine_restarts_is_optax_sgdr_of_its_cycles(m, peak_decay):
    cycles = [dict(init_value=1e-5, peak_value=1e-3 * peak_decay**i, warmup_steps=50 * m**i,
                   decay_steps=400 * m**i, end_value=1e-5) for i in range(20)]
    ours = schedules.get("cosine_restarts", initial_lr=1e-3, min_lr=1e-5, warmup_steps=50, cycle_steps=400,
                         cycle_multiplier=float(m), peak_decay=peak_decay)
    theirs = [optax_sgdr_reference(cycles, int(s)) for s in STEPS]
    np.testing.assert_allclose(rates(ours), theirs, rtol=1e-6)


def optax_piecewise_interpolate_reference(interpolate_type, init_value, boundaries_and_scales, count):
    """optax.piecewise_interpolate_schedule: rates are cumulative products of the scales, at the boundaries."""
    boundaries, scales = zip(*sorted(boundaries_and_scales.items()))
    bounds = [0, *boundaries]
    values = [init_value]
    for scale in scales:
        values.append(values[-1] * scale)
    if count >= bounds[-1]:
        return values[-1]
    i = max(k for k in range(len(bounds) - 1) if bounds[k] <= count)
    pct = (count - bounds[i]) / (bounds[i + 1] - bounds[i])
    if interpolate_type == "linear":
        return values[i] + (values[i + 1] - values[i]) * pct
    return values[i] + (values[i + 1] - values[i]) * (1 - math.cos(math.pi * pct)) / 2


@pytest.mark.parametrize("shape", ["linear", "cosine"])
def test_piecewise_interpolate_is_optax(shape):
    scales = {250: 40.0, 1000: 0.5, 3333: 0.01, 4000: 3.0}
    values = [2.5e-4]
    for boundary in sorted(scales):
        values.append(values[-1] * scales[boundary])
    ours = schedules.get("piecewise_interpolate", boundaries=sorted(scales), values=values, anneal_shape=shape)
    theirs = [optax_piecewise_interpolate_reference(shape, 2.5e-4, scales, int(s)) for s in STEPS]
    np.testing.assert_allclose(rates(ours), theirs, rtol=1e-6)


def test_piecewise_interpolate_closed_form_numpy():
    ours = schedules.get("piecewise_interpolate", boundaries=[100, 2000], values=[0.0, 1.0, 0.25])
    s = STEPS.astype(np.float64)
    expected = np.interp(s, [0, 100, 2000], [0.0, 1.0, 0.25])  # numpy's linear interpolation, flat after the end
    np.testing.assert_allclose(rates(ours), expected, rtol=1e-6, atol=1e-12)
    assert rates(schedules.get("piecewise_interpolate", boundaries=[], values=[0.3]))[4000] == pytest.approx(0.3)


def optax_linear_onecycle_reference(transition_steps, peak_value, pct_start, pct_final, div_factor,
                                    final_div_factor, count):
    return optax_piecewise_interpolate_reference(
        "linear", peak_value / div_factor,
        {int(pct_start * transition_steps): div_factor, int(pct_final * transition_steps): 1.0 / div_factor,
         transition_steps: 1.0 / final_div_factor}, count)


def optax_cosine_onecycle_reference(transition_steps, peak_value, pct_start, div_factor, final_div_factor, count):
    return optax_piecewise_interpolate_reference(
        "cosine", peak_value / div_factor,
        {int(pct_start * transition_steps): div_factor, transition_steps: 1.0 / (div_factor * final_div_factor)},
        count)


def test_one_cycle_three_phase_linear_is_optax_linear_onecycle():
    # Boundaries 0.3 * 4000 = 1200 and 0.85 * 4000 = 3400 are whole, where optax's int() rounds nothing away.
    ours = schedules.get("one_cycle", initial_lr=0.1, min_lr=0.1 / 25 / 1e4, total_steps=4000, warmup_fraction=0.3,
                         start_lr=0.1 / 25, three_phase=True, return_fraction=0.85, anneal_shape="linear")
    theirs = [optax_linear_onecycle_reference(4000, 0.1, 0.3, 0.85, 25.0, 1e4, int(s)) for s in STEPS]
    np.testing.assert_allclose(rates(ours), theirs, rtol=1e-6)


def test_one_cycle_start_lr_is_optax_cosine_onecycle():
    ours = schedules.get("one_cycle", initial_lr=0.1, min_lr=0.1 / 25 / 1e4, total_steps=4000, warmup_fraction=0.25,
                         start_lr=0.1 / 25)
    theirs = [optax_cosine_onecycle_reference(4000, 0.1, 0.25, 25.0, 1e4, int(s)) for s in STEPS]
    np.testing.assert_allclose(rates(ours), theirs, rtol=1e-6)


# ---------------------------------------------------------------------------------------------------- torch

def torch_one_cycle_reference(max_lr, total_steps, pct_start, anneal_strategy, div_factor, final_div_factor,
                              three_phase, step_num):
    """torch.optim.lr_scheduler.OneCycleLR's documented phases: each ends at the step given, annealing between."""
    initial_lr = max_lr / div_factor
    min_lr = initial_lr / final_div_factor
    if three_phase:
        phases = [(float(pct_start * total_steps) - 1, initial_lr, max_lr),
                  (float(2 * pct_start * total_steps) - 2, max_lr, initial_lr),
                  (total_steps - 1, initial_lr, min_lr)]
    else:
        phases = [(float(pct_start * total_steps) - 1, initial_lr, max_lr), (total_steps - 1, max_lr, min_lr)]
    start_step = 0.0
    for i, (end_step, start, end) in enumerate(phases):
        if step_num <= end_step or i == len(phases) - 1:
            pct = (step_num - start_step) / (end_step - start_step)
            if anneal_strategy == "cos":
                return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
            return (end - start) * pct + start
        start_step = end_step


@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize("anneal", ["cos", "linear"])
def test_one_cycle_is_torch_one_cycle_lr_one_step_shorter(three_phase, anneal):
    # torch's phases end at pct * T - 1 (peak), 2 pct * T - 2 and T - 1: ours with total_steps = T - 1 and
    # the fractions of T - 1 that put our phase ends on those steps.
    total, pct = 5001, 0.3
    params = dict(initial_lr=0.1, min_lr=0.1 / 25 / 1e4, total_steps=total - 1,
                  warmup_fraction=(pct * total - 1) / (total - 1), start_lr=0.1 / 25,
                  anneal_shape="cosine" if anneal == "cos" else "linear")
    if three_phase:
        params.update(three_phase=True, return_fraction=(2 * pct * total - 2) / (total - 1))
    ours = schedules.get("one_cycle", **params)
    theirs = [torch_one_cycle_reference(0.1, total, pct, anneal, 25.0, 1e4, three_phase, int(s)) for s in STEPS]
    np.testing.assert_allclose(rates(ours), theirs, rtol=1e-6, atol=1e-12)


def test_one_cycle_three_phase_default_return_is_twice_the_rise():
    ours = rates(schedules.get("one_cycle", initial_lr=1.0, min_lr=0.0, total_steps=4000, warmup_fraction=0.2,
                               start_lr=0.1, three_phase=True))
    s = STEPS.astype(np.float64)
    rise = 0.1 + 0.9 * (1 - np.cos(np.pi * s / 800)) / 2
    fall = 0.1 + 0.9 * (1 + np.cos(np.pi * (s - 800) / 800)) / 2
    last = 0.1 * (1 + np.cos(np.pi * np.clip((s - 1600) / 2400, 0, 1))) / 2
    np.testing.assert_allclose(ours, np.select([s < 800, s < 1600], [rise, fall], last), rtol=1e-6, atol=1e-12)


def torch_cyclic_reference(base_lr, max_lr, step_size_up, step_size_down, mode, gamma, last_epoch):
    """torch.optim.lr_scheduler.CyclicLR's documented closed form."""
    total_size = step_size_up + step_size_down
    step_ratio = step_size_up / total_size
    cycle = math.floor(1 + last_epoch / total_size)
    x = 1.0 + last_epoch / total_size - cycle
    scale_factor = x / step_ratio if x <= step_ratio else (x - 1) / (step_ratio - 1)
    base_height = (max_lr - base_lr) * scale_factor
    if mode == "triangular":
        return base_lr + base_height
    if mode == "triangular2":
        return base_lr + base_height / (2.0 ** (cycle - 1))
    return base_lr + base_height * gamma**last_epoch


@pytest.mark.parametrize("mode,up,down,gamma", [("triangular", 200, 200, 1.0), ("triangular", 300, 700, 1.0),
                                                ("triangular2", 250, 150, 1.0), ("exp_range", 400, 100, 0.9995)])
def test_cyclic_is_torch_cyclic_lr(mode, up, down, gamma):
    ours = schedules.get("cyclic", initial_lr=0.1, min_lr=1e-3, up_steps=up, down_steps=down, mode=mode,
                         gamma=gamma)
    theirs = [torch_cyclic_reference(1e-3, 0.1, up, down, mode, gamma, int(s)) for s in STEPS]
    np.testing.assert_allclose(rates(ours), theirs, rtol=1e-6, atol=1e-12)


def test_cyclic_down_steps_default_to_up_steps():
    a = rates(schedules.get("cyclic", initial_lr=0.1, min_lr=0.0, up_steps=123))
    b = rates(schedules.get("cyclic", initial_lr=0.1, min_lr=0.0, up_steps=123, down_steps=123))
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------------- timm

def timm_reference(kind, t_initial, lr_max, lr_min, cycle_mul, cycle_decay, cycle_limit, warmup_t, warmup_lr_init,
                   warmup_prefix, k_decay, power, t):
    """timm's CosineLRScheduler / PolyLRScheduler `_get_lr`, its cycle found by walking exact cycle starts.

    timm finds the cycle with a float log (which misplaces some restarts); the walk is its intended placement.
    """
    if t < warmup_t:
        return warmup_lr_init + t * (lr_max - warmup_lr_init) / warmup_t
    if warmup_prefix:
        t = t - warmup_t
    i, start, length = 0, Fraction(0), Fraction(t_initial)
    m = Fraction(str(cycle_mul))
    while t >= start + length:
        i, start, length = i + 1, start + length, length * m
    if i >= cycle_limit:
        return lr_min
    peak = lr_max * cycle_decay**i
    t_curr, t_i = float(t - start), float(length)
    if kind == "cosine":
        return lr_min + 0.5 * (peak - lr_min) * (1 + math.cos(math.pi * t_curr**k_decay / t_i**k_decay))
    return lr_min + (peak - lr_min) * (1 - t_curr**k_decay / t_i**k_decay) ** power


def timm_as_ours(kind, t_initial, cycle_mul, cycle_decay, cycle_limit, warmup_t, warmup_prefix, k_decay, power):
    params = dict(initial_lr=1e-2, min_lr=1e-4, warmup_steps=0, cycle_steps=t_initial, cycle_multiplier=cycle_mul,
                  peak_decay=cycle_decay, max_cycles=cycle_limit, k_decay=k_decay)
    if kind == "cosine":
        inner = schedules.get("cosine_restarts", **params)
    else:
        inner = schedules.get("polynomial_restarts", power=power, **params)
    return schedules.warmup(inner, warmup_steps=warmup_t, start_lr=1e-5, prefix=warmup_prefix)


TIMM_CASES = [
    # t_initial, cycle_mul, cycle_decay, cycle_limit, warmup_t, warmup_prefix, k_decay
    (1000, 1.0, 1.0, 1, 0, False, 1.0),
    (1000, 1.0, 0.8, 5, 100, False, 1.0),
    (700, 2.0, 0.7, 4, 50, True, 1.0),
    (600, 1.5, 0.9, 10, 200, False, 2.0),
    (900, 1.0, 1.0, 6, 0, False, 0.5),
    (500, 3.0, 1.0, 3, 120, True, 1.7),
]


@pytest.mark.parametrize("t_initial,cycle_mul,cycle_decay,cycle_limit,warmup_t,warmup_prefix,k_decay", TIMM_CASES)
def test_cosine_restarts_with_warmup_is_timm_cosine_lr_scheduler(t_initial, cycle_mul, cycle_decay, cycle_limit,
                                                                  warmup_t, warmup_prefix, k_decay):
    ours = timm_as_ours("cosine", t_initial, cycle_mul, cycle_decay, cycle_limit, warmup_t, warmup_prefix, k_decay,
                        None)
    theirs = [timm_reference("cosine", t_initial, 1e-2, 1e-4, cycle_mul, cycle_decay, cycle_limit, warmup_t, 1e-5,
                             warmup_prefix, k_decay, None, int(s)) for s in STEPS]
    np.testing.assert_allclose(rates(ours), theirs, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("power", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("t_initial,cycle_mul,cycle_decay,cycle_limit,warmup_t,warmup_prefix,k_decay",
                         TIMM_CASES[1:4])
def test_polynomial_restarts_with_warmup_is_timm_poly_lr_scheduler(t_initial, cycle_mul, cycle_decay, cycle_limit,
                                                                    warmup_t, warmup_prefix, k_decay, power):
    ours = timm_as_ours("poly", t_initial, cycle_mul, cycle_decay, cycle_limit, warmup_t, warmup_prefix, k_decay,
                        power)
    theirs = [timm_reference("poly", t_initial, 1e-2, 1e-4, cycle_mul, cycle_decay, cycle_limit, warmup_t, 1e-5,
                             warmup_prefix, k_decay, power, int(s)) for s in STEPS]
    # power < 1 magnifies float32 rounding next to each cycle's end.
    np.testing.assert_allclose(rates(ours), theirs, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("warmup_prefix", [False, True])
@pytest.mark.parametrize("k_decay", [1.0, 2.0])
def test_cosine_warmup_prefix_is_timm_one_cycle_cosine_lr_scheduler(warmup_prefix, k_decay):
    # timm's default cycle_limit=1: one cycle of t_initial steps after (prefix) or under (no prefix) the warmup.
    t_initial, warmup_t = 4000, 300
    ours = schedules.get("cosine", initial_lr=1e-2, min_lr=1e-4, warmup_steps=warmup_t,
                         total_steps=t_initial + (warmup_t if warmup_prefix else 0), k_decay=k_decay,
                         warmup_prefix=warmup_prefix)
    theirs = [timm_reference("cosine", t_initial, 1e-2, 1e-4, 1.0, 1.0, 1, warmup_t, 1e-4, warmup_prefix, k_decay,
                             None, int(s)) for s in STEPS]
    np.testing.assert_allclose(rates(ours), theirs, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("kind", ["cosine", "poly"])
@pytest.mark.parametrize("warmup_prefix", [False, True])
def test_restarts_warmup_prefix_with_one_cycle_is_timm(kind, warmup_prefix):
    t_initial, warmup_t = 3000, 400
    params = dict(initial_lr=1e-2, min_lr=1e-4, warmup_steps=warmup_t, max_cycles=1, k_decay=1.5,
                  cycle_steps=t_initial + (warmup_t if warmup_prefix else 0), cycle_multiplier=2.0,
                  peak_decay=0.5, warmup_prefix=warmup_prefix)
    if kind == "cosine":
        ours = schedules.get("cosine_restarts", **params)
    else:
        ours = schedules.get("polynomial_restarts", power=2.0, **params)
    theirs = [timm_reference(kind, t_initial, 1e-2, 1e-4, 2.0, 0.5, 1, warmup_t, 1e-4, warmup_prefix, 1.5, 2.0,
                             int(s)) for s in STEPS]
    np.testing.assert_allclose(rates(ours), theirs, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("kind", ["cosine", "poly"])
@pytest.mark.parametrize("warmup_power", [1.0, 2.0])
def test_restarts_without_warmup_prefix_are_timm_cycles_each_with_its_warmup_laid_over(kind, warmup_power):
    # timm warms up once; here each cycle warms up over its first 50 * 2**i steps, laid over its decay. Outside
    # those later warmups the rate is timm's (warmup_prefix=False, warmup_lr_init=min_lr); inside them, a ramp.
    c, w = 500, 50
    params = dict(initial_lr=1e-2, min_lr=1e-4, warmup_steps=w, cycle_steps=c, cycle_multiplier=2.0,
                  peak_decay=0.8, max_cycles=4, k_decay=1.5, warmup_power=warmup_power, warmup_prefix=False)
    if kind == "cosine":
        ours = schedules.get("cosine_restarts", **params)
    else:
        ours = schedules.get("polynomial_restarts", power=2.0, **params)
    expected = []
    for step in map(int, STEPS):
        start, length, k = 0, c, 0
        while step >= start + length:
            start, length, k = start + length, 2 * length, k + 1
        warm = w * 2**k
        if k < 4 and step - start < warm and (k > 0 or warmup_power != 1.0):
            peak = 1e-2 * 0.8**k
            expected.append(1e-4 + (peak - 1e-4) * ((step - start) / warm) ** warmup_power)
        else:
            expected.append(timm_reference(kind, c, 1e-2, 1e-4, 2.0, 0.8, 4, w, 1e-4, False, 1.5, 2.0, step))
    np.testing.assert_allclose(rates(ours), expected, rtol=1e-6, atol=1e-12)


def test_cosine_k_decay_closed_form_numpy():
    ours = schedules.get("cosine", initial_lr=1e-3, min_lr=1e-5, warmup_steps=250, total_steps=4000, k_decay=2.5)
    s = STEPS.astype(np.float64)
    x = np.clip((s - 250) / 3750, 0, 1) ** 2.5
    expected = np.where(s < 250, 1e-5 + (1e-3 - 1e-5) * s / 250, 1e-5 + (1e-3 - 1e-5) * (1 + np.cos(np.pi * x)) / 2)
    np.testing.assert_allclose(rates(ours), expected, rtol=1e-6)


# ---------------------------------------------------------------------------------------------------- Model Garden

def garden_power_and_linear_reference(initial_learning_rate, total_decay_steps, power, linear_decay_fraction,
                                      offset, step):
    """Model Garden's PowerAndLinearDecay (DirectPowerDecay: total_decay_steps * fraction = 0, offset 0)."""
    step = step - offset
    lr = initial_learning_rate * max(step, 1.0) ** power
    if total_decay_steps * linear_decay_fraction > 0:
        lr *= min(1.0, (total_decay_steps - step) / (total_decay_steps * linear_decay_fraction))
        lr = max(0.0, lr)
    return lr


def garden_power_decay_with_offset_reference(initial_learning_rate, power, offset, pre_offset_learning_rate, step):
    after = max(step - offset, 1.0) ** power * initial_learning_rate
    return min(pre_offset_learning_rate if step <= offset else after, pre_offset_learning_rate)


@pytest.mark.parametrize("power", [-0.5, -1.0, -0.25, 0.0])
def test_power_decay_is_model_garden_direct_power_decay(power):
    ours = schedules.get("power_decay", initial_lr=0.3, decay_power=-power)
    theirs = [garden_power_and_linear_reference(0.3, 0, power, 0.0, 0, int(s)) for s in STEPS]
    np.testing.assert_allclose(rates(ours), theirs, rtol=1e-6)


@pytest.mark.parametrize("power,fraction", [(-0.5, 0.1), (-1.0, 0.3), (-0.5, 1.0), (0.0, 0.2)])
def test_power_decay_total_steps_is_model_garden_power_and_linear_decay(power, fraction):
    ours = schedules.get("power_decay", initial_lr=0.3, decay_power=-power, total_steps=4000,
                         linear_decay_fraction=fraction)
    theirs = [garden_power_and_linear_reference(0.3, 4000, power, fraction, 0, int(s)) for s in STEPS]
    np.testing.assert_allclose(rates(ours), theirs, rtol=1e-6, atol=1e-12)


def test_power_decay_offset_is_a_sequence_after_a_constant():
    # Model Garden's offset: initial_learning_rate until the offset, then the power law from step 1.
    ours = schedules.sequence([(schedules.get("constant", initial_lr=0.3), 500),
                               (schedules.get("power_decay", initial_lr=0.3, decay_power=0.5, total_steps=3000), None)])
    theirs = [garden_power_and_linear_reference(0.3, 3000, -0.5, 0.1, 500, int(s)) for s in STEPS]
    np.testing.assert_allclose(rates(ours), theirs, rtol=1e-6, atol=1e-12)
    # PowerDecayWithOffset: pre_offset_learning_rate up to and including step offset, then the power law.
    ours = schedules.sequence([(schedules.get("constant", initial_lr=0.05), 300),
                               (schedules.get("power_decay", initial_lr=0.04, decay_power=0.5), None)])
    theirs = [garden_power_decay_with_offset_reference(0.04, -0.5, 300, 0.05, int(s)) for s in STEPS]
    differ = np.flatnonzero(~np.isclose(rates(ours), theirs, rtol=1e-6))
    assert list(differ) == [300]  # Model Garden keeps its pre-offset rate one step longer


def test_power_decay_warmup_is_the_noam_rate():
    d_model, warmup = 512, 400
    ours = schedules.get("power_decay", initial_lr=(d_model * warmup) ** -0.5, decay_power=0.5,
                         warmup_steps=warmup)
    noam = [d_model**-0.5 * min(max(s, 1) ** -0.5, s * warmup**-1.5) for s in map(int, STEPS)]
    noam[0] = 0.0  # min(1, 0): the Transformer's rate is 0 at step 0
    np.testing.assert_allclose(rates(ours), noam, rtol=1e-6, atol=1e-12)


def garden_polynomial_warmup_reference(after, warmup_steps, power, step):
    """Model Garden's PolynomialWarmUp over a schedule `after` (laid over it: after(step) from warmup_steps)."""
    if step < warmup_steps:
        return after(warmup_steps) * (max(step, 1.0) / warmup_steps) ** power
    return after(step)


@pytest.mark.parametrize("power", [1.0, 2.0, 0.5])
def test_warmup_power_is_model_garden_polynomial_warmup(power):
    # The built-in warmups reach the peak at warmup_steps, where Model Garden's ramps to after(warmup_steps).
    def cosine_after(step):  # Model Garden's CosineDecayWithOffset(offset=w) under the warmup
        return 1e-3 * 0.5 * (1 + math.cos(math.pi * min(max(step - 300, 0), 3700) / 3700))

    theirs = np.array([garden_polynomial_warmup_reference(cosine_after, 300, power, int(s)) for s in STEPS])
    cosine = schedules.get("cosine", initial_lr=1e-3, min_lr=0.0, warmup_steps=300, total_steps=4000,
                           warmup_power=power)
    # Model Garden starts from step 1's rate (max(step, 1)); ours from min_lr at step 0.
    np.testing.assert_allclose(rates(cosine)[1:], theirs[1:], rtol=1e-6)
    assert rates(cosine)[0] == 0.0
    wsd = schedules.get("warmup_stable_decay", initial_lr=1e-3, min_lr=0.0, warmup_steps=300, stable_steps=1000,
                        decay_steps=2000, warmup_power=power)
    np.testing.assert_allclose(rates(wsd)[1:300], theirs[1:300], rtol=1e-6)
    power_decay = schedules.get("power_decay", initial_lr=1e-3, decay_power=0.5, warmup_steps=300,
                                warmup_power=power)
    np.testing.assert_allclose(rates(power_decay)[1:300], theirs[1:300], rtol=1e-6)


@pytest.mark.parametrize("power", [2.0, 0.5])
def test_warmup_power_in_cosine_restarts_closed_form(power):
    ours = schedules.get("cosine_restarts", initial_lr=1e-2, min_lr=1e-4, warmup_steps=100, cycle_steps=1000,
                         cycle_multiplier=2.0, warmup_power=power, k_decay=1.5)
    out = []
    for step in map(int, STEPS):
        start, length, k = 0, 1000, 0
        while step >= start + length:
            start, length, k = start + length, 2 * length, k + 1
        t, warm = step - start, 100 * 2**k
        if t < warm:
            out.append(1e-4 + (1e-2 - 1e-4) * (t / warm) ** power)
        else:
            x = ((t - warm) / (length - warm)) ** 1.5
            out.append(1e-4 + (1e-2 - 1e-4) * (1 + math.cos(math.pi * x)) / 2)
    np.testing.assert_allclose(rates(ours), out, rtol=1e-6)


def test_warmup_combinator_power_without_prefix_closed_form():
    inner = schedules.get("exponential", initial_lr=0.5, decay_steps=100, decay_rate=0.9)
    ours = schedules.warmup(inner, warmup_steps=400, start_lr=0.01, prefix=False, warmup_power=3.0)
    s = STEPS.astype(np.float64)
    expected = np.where(s < 400, 0.01 + (0.5 - 0.01) * (s / 400) ** 3, 0.5 * 0.9 ** (s / 100))
    np.testing.assert_allclose(rates(ours), expected, rtol=1e-6)


def timm_wsd_reference(t_initial, decay_t, lr_max, lr_min, decay_fn, decay_power, decay_ratio, warmup_t,
                       warmup_lr_init, t):
    """timm's WSDLRScheduler with its constant stable function."""
    if t < warmup_t:
        return warmup_lr_init + t * (lr_max - warmup_lr_init) / warmup_t
    t_decay = t - warmup_t - (t_initial - decay_t)
    if t_decay <= 0:
        return lr_max
    frac = min(t_decay / decay_t, 1.0)
    decay = {"linear": 1 - frac, "1-sqrt": 1 - math.sqrt(frac), "cosine": 0.5 * (1 + math.cos(math.pi * frac)),
             "power": 1 - frac**decay_power, "exp": (decay_ratio**frac - decay_ratio) / (1 - decay_ratio)}[decay_fn]
    return lr_min + (lr_max - lr_min) * decay


@pytest.mark.parametrize("decay_fn,decay_power,decay_ratio", [
    ("power", 0.5, 0.1), ("power", 2.0, 0.1), ("power", 1.0, 0.1), ("exp", 0.5, 0.1), ("exp", 0.5, 0.01),
    ("1-sqrt", 0.5, 0.1), ("linear", 0.5, 0.1), ("cosine", 0.5, 0.1)])
def test_warmup_stable_decay_is_timm_wsd_lr_scheduler(decay_fn, decay_power, decay_ratio):
    shape = {"1-sqrt": "sqrt"}.get(decay_fn, decay_fn)
    ours = schedules.get("warmup_stable_decay", initial_lr=3e-3, min_lr=1e-5, warmup_steps=200, stable_steps=2800,
                         decay_steps=1500, decay_shape=shape, decay_power=decay_power, decay_ratio=decay_ratio)
    theirs = [timm_wsd_reference(4300, 1500, 3e-3, 1e-5, decay_fn, decay_power, decay_ratio, 200, 1e-5, int(s))
              for s in STEPS]
    np.testing.assert_allclose(rates(ours), theirs, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("shape", ["power", "exp"])
def test_warmup_stable_decay_power_and_exp_closed_form_numpy(shape):
    ours = schedules.get("warmup_stable_decay", initial_lr=0.02, min_lr=0.001, warmup_steps=300, stable_steps=2500,
                         decay_steps=1200, decay_shape=shape, decay_power=3.0, decay_ratio=0.05)
    s = STEPS.astype(np.float64)
    x = np.clip((s - 2800) / 1200, 0, 1)
    remaining = 1 - x**3 if shape == "power" else (np.exp(x * np.log(0.05)) - 0.05) / 0.95
    expected = np.where(s < 300, 0.001 + 0.019 * s / 300, 0.001 + 0.019 * remaining)
    np.testing.assert_allclose(rates(ours), expected, rtol=1e-6)
