"""The learning-rate range test (Smith 2017, "Cyclical Learning Rates for Training Neural Networks"), run by
the trainer's own loop: train from the model's initial weights while the rate grows exponentially from
min_lr to max_lr, watch the loss, and read off a peak rate.

The rate is the package's `exponential` schedule grown to its ceiling (decay_rate = max_lr / min_lr over
num_steps - 1 steps), so step s has rate min_lr * (max_lr / min_lr) ** (s / (num_steps - 1)). The loss is
smoothed as fastai and Lightning do (an exponential moving average, beta 0.98, bias-corrected); the test ends
early once the smoothed loss passes 4 times its minimum, or a loss is not finite. The suggestion is one of
three usual readings of the curve (`candidates`), RULE, chosen by measurement (README).
"""
import dataclasses
import math
import os
import time

import numpy as np
import tensorflow as tf

import schedules
from trainer import controller, loop
from trainer.config import ConfigError

SMOOTHING = 0.98
DIVERGENCE = 4.0  # the smoothed loss over its minimum that ends the test
SKIP_START, SKIP_END = 10, 5
MIN_STEPS = SKIP_START + SKIP_END + 5
RULES = {'steepest': 'steepest descent of the smoothed loss', 'valley': "fastai's valley",
         'minimum/10': 'a tenth of the rate at the lowest smoothed loss'}
RULE = 'minimum/10'  # chosen by measurement: README, "Finding the peak rate"


@dataclasses.dataclass(frozen=True)
class Result:
    """suggestion: the peak rate to use (None: the loss never decreased); rule: how it was read off;
    rates, losses, smoothed: per step run; stopped: why the test ended; figure: the PNG (None without
    matplotlib); seconds: wall time of the test."""
    suggestion: float | None
    rule: str
    rates: tuple
    losses: tuple
    smoothed: tuple
    stopped: str
    figure: str | None
    seconds: float


def schedule(min_lr, max_lr, num_steps):
    """The rising rate of the test: `exponential` from min_lr to max_lr over num_steps steps. Raises ConfigError."""
    if not (isinstance(min_lr, (int, float)) and isinstance(max_lr, (int, float)) and 0 < min_lr < max_lr
            and math.isfinite(max_lr)):
        raise ConfigError(f'--min_lr={min_lr} and --max_lr={max_lr}: the range test needs 0 < min_lr < max_lr '
                          '(finite)')
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < MIN_STEPS:
        raise ConfigError(f'--num_steps={num_steps!r} is too few for a range test; give at least {MIN_STEPS} '
                          '(100 to 300 is usual)')
    return schedules.get('exponential', initial_lr=min_lr, decay_rate=max_lr / min_lr, decay_steps=num_steps - 1,
                         max_lr=max_lr)


def smooth(losses, beta=SMOOTHING):
    """Bias-corrected exponential moving average of `losses` (fastai's and Lightning's smoothing)."""
    average, smoothed = 0.0, []
    for i, value in enumerate(losses):
        average = beta * average + (1 - beta) * value
        smoothed.append(average / (1 - beta ** (i + 1)))
    return smoothed


def candidates(rates, smoothed):
    """{rule: rate} of the three usual readings of the smoothed curve (rates from an exponential range):

    steepest: the rate of the steepest descent against log(rate) (PyTorch Lightning's `suggestion`), the
    first SKIP_START and last SKIP_END points left out; valley: two thirds of the way down the longest
    descending run of the curve (fastai's `valley`); minimum/10: a tenth of the rate of the lowest loss (the
    older fastai advice). {} when the curve is too short or never descends.
    """
    if len(smoothed) < MIN_STEPS:
        return {}
    window = np.asarray(smoothed[SKIP_START:len(smoothed) - SKIP_END])
    if window.min() >= window[0]:  # not smoothed[0]: the first points are one or two batches' loss
        return {}
    slopes = np.gradient(window, np.log(np.asarray(rates[SKIP_START:len(smoothed) - SKIP_END])))
    if slopes.min() >= 0:
        return {}
    found = {'steepest': float(rates[SKIP_START + int(np.argmin(slopes))])}
    longest = [1] * len(smoothed)  # longest strictly descending run (not contiguous) ending at each point
    start = end = 0
    for i in range(1, len(smoothed)):
        for j in range(i):
            if smoothed[i] < smoothed[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
        if longest[i] > longest[end]:
            end, start = i, i - longest[i]
    third = (end - start) / 3
    found['valley'] = float(rates[max(0, start + int(third) + int(third / 2))])
    found['minimum/10'] = float(rates[SKIP_START + int(np.argmin(window))]) / 10  # past the noisy start
    return found


def suggest(rates, smoothed):
    """(rate, rule) by RULE, or (None, why) when the curve is too short or the loss never decreased."""
    if len(smoothed) < MIN_STEPS:
        return None, f'the test ended after {len(smoothed)} steps, fewer than the {MIN_STEPS} it needs to read a slope'
    found = candidates(rates, smoothed)
    if not found:
        return None, 'the loss never decreased'
    return found[RULE], RULES[RULE]


def search(experiment, model_fn, strategy, out, min_lr=1e-7, max_lr=10.0, num_steps=100, loss=None, metrics=None,
           optimizer=None, draw=True):
    """Runs the range test for `experiment` (its data, batch, seed, optimizer and strategy); writes per-step
    `batch/learning_rate` and `batch/loss` scalars to <out>/train and the figure to <out>/range_test.png (and as a
    TensorBoard image; not with draw=False, which --initial_lr=auto passes: drawing costs a third of a short
    test); returns a Result. The model is built by model_fn, as for training, from the seed's
    initial weights; a built keras.Model is given back its initial weights afterwards."""
    began = time.perf_counter()
    rising = schedule(min_lr, max_lr, num_steps)
    config = dataclasses.replace(experiment.config, model_dir=out)
    experiment = dataclasses.replace(experiment, config=config, schedule=rising, total_steps=num_steps)
    built = controller.build(experiment, model_fn, strategy, loss, metrics, optimizer, for_export=False)
    initial = [v.numpy() for v in built.model.variables]
    os.makedirs(out, exist_ok=True)
    writer = tf.summary.create_file_writer(os.path.join(out, 'train'))
    built.batches.start(0)
    steps = loop.Loop(built.model, built.optimizer, strategy, built.step, writer, built.batches,
                      on_nonfinite='skip')
    rates, losses, stopped = [], [], f'all {num_steps} steps'
    one = tf.constant(1, tf.int64)
    for step in range(num_steps):
        rates.append(float(rising(step)))
        means, _ = steps.train(one)
        value = float(means['loss'])
        if int(steps.guard.skipped.numpy()) or not math.isfinite(value):
            stopped = f'a non-finite loss at step {step}'
            break
        losses.append(value)
        smoothed = smooth(losses)
        if smoothed[-1] > DIVERGENCE * min(smoothed):
            stopped = f'the smoothed loss passed {DIVERGENCE:g} times its minimum at step {step}'
            break
    rates = rates[:len(losses)]
    smoothed = smooth(losses)
    suggestion, rule = suggest(rates, smoothed)
    for variable, value in zip(built.model.variables, initial):
        variable.assign(value)
    figure = _figure(os.path.join(out, 'range_test.png'), rates, losses, smoothed, suggestion, rule, writer) \
        if draw else None
    writer.close()
    return Result(suggestion=suggestion, rule=rule, rates=tuple(rates), losses=tuple(losses),
                  smoothed=tuple(smoothed), stopped=stopped, figure=figure, seconds=time.perf_counter() - began)


def _figure(path, rates, losses, smoothed, suggestion, rule, writer):
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use('Agg')
    from matplotlib import pyplot
    fig, axes = pyplot.subplots(figsize=(6.4, 4.0), dpi=100)
    axes.plot(rates, losses, color='0.75', linewidth=0.8, label='loss')
    axes.plot(rates, smoothed, linewidth=1.6, label='smoothed loss')
    if suggestion is not None:
        axes.axvline(suggestion, color='tab:red', linestyle='--', linewidth=1.2,
                     label=f'suggested {suggestion:.2g} ({rule})')
    axes.set_xscale('log')
    axes.set_xlabel('learning rate')
    axes.set_ylabel('training loss')
    top = max(smoothed[0], min(smoothed) * DIVERGENCE) if smoothed else 1.0
    axes.set_ylim(min(losses + [top]) * 0.9 if losses else 0.0, top * 1.1)
    axes.set_title('learning-rate range test')
    axes.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    pyplot.close(fig)
    with writer.as_default():
        tf.summary.image('range_test', rgb[None], step=0)
    return path
