"""Draws learning-rate curves: `python -m schedules.plot --schedule=cosine_restarts,cosine --steps=20000`.

Every schedule parameter is a flag (see schedules.flags); unset lengths follow from --steps. Needs matplotlib
(`pip install 'stepwise[plot]'`).
"""

import sys

import numpy as np
import tensorflow as tf
from absl import app, flags

from schedules import flags as schedule_flags
from schedules import registry, validation

# Curves longer than this are drawn from this many evenly spaced whole steps.
MAX_POINTS = 1_000_000
# ... or, for a schedule that takes one step at a time, this many.
_SCALAR_POINTS = 2_000


def curve(schedule, steps):
    """(steps, rates) as numpy arrays: the rate at every whole step in [0, steps]."""
    if steps + 1 <= MAX_POINTS:
        x = np.arange(steps + 1, dtype=np.int64)
    else:
        x = np.unique(np.linspace(0, steps, MAX_POINTS).astype(np.int64))
    try:
        rates = np.asarray(schedule(x), dtype=np.float64)
    except (TypeError, ValueError, tf.errors.OpError):
        rates = None  # a schedule of one step at a time (a user's function)
    if rates is None or rates.shape not in ((), x.shape):
        # One eager call per point: a few thousand of them are enough to draw it.
        x = np.unique(np.linspace(0, steps, min(len(x), _SCALAR_POINTS)).astype(np.int64))
        rates = np.array([float(schedule(tf.constant(step, tf.int64))) for step in x])
    return x, np.broadcast_to(rates, x.shape)


def figure(named, steps, log_scale=False, title=None):
    """A matplotlib Figure with one line per schedule in `named` ({label: schedule})."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    fig, axes = pyplot.subplots(figsize=(8, 4.5), dpi=100)
    for label, schedule in named.items():
        axes.plot(*curve(schedule, steps), label=label, linewidth=1.2)
    axes.set_xlabel("step")
    axes.set_ylabel("learning rate")
    if log_scale:
        axes.set_yscale("log")
    if title:
        axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    if len(named) > 1:
        axes.legend()
    fig.tight_layout()
    return fig


def card(schedule, steps, title, mark):
    """A small RGB uint8 image [height, width, 3] of one schedule over [0, steps], step `mark` marked: legible
    at TensorBoard's card width (about 400 px), where an 800-pixel figure's text is too small to read."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    fig, axes = pyplot.subplots(figsize=(4.2, 3.0), dpi=100)
    x, rates = curve(schedule, steps)
    axes.plot(x, rates, linewidth=1.4)
    at = min(max(int(mark), 0), steps)
    rate = float(np.asarray(schedule(np.int64(at)), dtype=np.float64))
    axes.axvline(at, color="tab:red", linewidth=1, alpha=0.7)
    axes.plot([at], [rate], "o", color="tab:red", markersize=5)
    axes.annotate(f"step {at}\n{rate:.3g}", (at, rate), textcoords="offset points", xytext=(5, 5), fontsize=9,
                  color="tab:red", ha="right" if at > steps / 2 else "left")
    axes.set_xlabel("step", fontsize=10)
    axes.set_ylabel("learning rate", fontsize=10)
    axes.tick_params(labelsize=9)
    axes.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    axes.set_title(title, fontsize=9, loc="left")
    axes.grid(alpha=0.3)
    fig.tight_layout()
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    pyplot.close(fig)
    return rgb


def image(named, steps, title=None):
    """The figure of `named` as an RGB uint8 array [height, width, 3] (for TensorBoard)."""
    fig = figure(named, steps, title=title)
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    from matplotlib import pyplot
    pyplot.close(fig)
    return rgb


FLAGS = flags.FLAGS


def define_flags():
    """The CLI's flags; defined only when it runs, so importing `image` does not claim --schedule."""
    flags.DEFINE_list("schedule", ["cosine_restarts"], "Schedules to draw, comma-separated: "
                      + ", ".join(registry.names()) + ".")
    flags.DEFINE_integer("steps", 20000, "Draw steps 0 to this.", lower_bound=1)
    flags.DEFINE_string("out", "lr.png", "Image file to write (png, svg or pdf).")
    flags.DEFINE_boolean("log_scale", False, "Logarithmic learning-rate axis.")
    flags.DEFINE_string("title", None, "Title of the figure.")
    schedule_flags.define()


def main(argv):
    if len(argv) > 1:
        _fail(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        _fail("schedules.plot needs matplotlib: pip install 'stepwise[plot]'")
    try:
        params = schedule_flags.given()
        named = {name: schedule_flags.build(name, params, FLAGS.steps) for name in FLAGS.schedule}
    except validation.ParameterError as error:
        _fail(f"--{error}")
    fig = figure(named, FLAGS.steps, log_scale=FLAGS.log_scale, title=FLAGS.title)
    try:
        fig.savefig(FLAGS.out)
    except (OSError, ValueError) as error:
        _fail(f"--out: cannot write {FLAGS.out}: {error}")
    print(f"wrote {FLAGS.out}")


def _fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def run():
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
