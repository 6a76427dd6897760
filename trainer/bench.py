"""Throughput and time to accuracy, measured side by side: `python -m trainer.bench [--accuracy]`.

Throughput: the seed's CNN on Fashion-MNIST, one batch size, optimizer and schedule for every contender:
  bare      the trainer's compiled step applied again and again to one batch in memory (the ceiling);
  loop      the trainer as shipped (batches gathered per step, schedule, per-step summaries, checkpoints every
            1000 steps);
  loop_stream  the same with --input=stream: the same batches read by a tf.data pipeline (trainer.stream);
  fit       Keras model.fit with the same model, batches (their tf.data stream), optimizer, schedule and an
            accuracy metric;
  fit_fast  the same at steps_per_execution=50;
  eager     model.fit under tf.config.run_functions_eagerly(True), as the seed runs.
Each contender is timed in windows of --steps steps, in rounds of rotating order, --repeats times; reported:
the median per contender, their ratios, and the ratios within each round's windows with their median over
rounds (steadier when the machine's speed drifts). Every window builds its contender afresh (model,
optimizer, compiled function) and leaves its tracing and first steps out of the timing: one instance of the
same code can run 10% faster or slower than another for its whole life, so a contender built once would be
measured on one draw of that luck. Writes <out>/throughput.json and throughput.md.

--replicas times the trainer as shipped with 1 and 2 CPU replicas (the CPU split into two logical devices;
one_device against mirrored) and writes <out>/replicas.json and replicas.md.

--find_lr runs the learning-rate range test on configs/quick.flags for Adam and SGD (momentum 0.9) and compares
--initial_lr=auto with a grid of fixed peaks; writes <out>/find_lr.json and find_lr.md.

--accuracy trains for --epochs with several schedules at one peak rate (and configs/fashion_mnist_best.flags),
records the test accuracy after every epoch, and writes <out>/accuracy.json, accuracy.md and accuracy.png.
"""
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from schedules import flags as schedule_flags  # noqa: E402
from trainer import api, data, distribute, loop, models, optimizers, range_test, task, tfds_data  # noqa: E402
from trainer import config as config_lib  # noqa: E402
from trainer import flags as trainer_flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer('batch_size', 32, 'Global batch size.', lower_bound=1)
flags.DEFINE_integer('steps', 1000, 'Steps per timed window (a multiple of 200).', lower_bound=200)
flags.DEFINE_integer('repeats', 3, 'Timed windows per contender.', lower_bound=1)
flags.DEFINE_string('out', 'runs/bench', 'Folder for the results.')
flags.DEFINE_boolean('accuracy', False, 'Measure time to accuracy instead of throughput.')
flags.DEFINE_boolean('replicas', False, 'Measure the trainer with 1 and 2 CPU replicas instead.')
flags.DEFINE_boolean('find_lr', False, 'Measure the learning-rate range test and --initial_lr=auto instead.')
flags.DEFINE_integer('epochs', 10, 'Epochs per schedule with --accuracy.', lower_bound=1)
flags.DEFINE_float('peak_lr', 1e-3, 'Peak learning rate of every schedule with --accuracy.')

CONTENDERS = ('bare', 'loop', 'loop_stream', 'fit', 'fit_fast', 'eager')
BEST_FLAGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'configs',
                          'fashion_mnist_best.flags')


class _Setup:
    """What every throughput contender shares: the data, the model description and a schedule."""

    def __init__(self, batch_size, steps):
        self.batch_size = batch_size
        self.info = tfds_data.info('fashion_mnist')
        self.schedule = schedule_flags.build('cosine_restarts', {}, run_steps=10 * steps)
        self.examples = tfds_data.load('fashion_mnist', 'train')
        self.batches = data.TrainBatches(self.examples, tfds_data.num_examples('fashion_mnist', 'train'),
                                         batch_size, seed=0)


def _bare(setup):
    batch = setup.batches(tf.constant(0, tf.int64))

    def window(steps):
        strategy = distribute.create()
        with strategy.scope():
            model = models.build('cnn', setup.info)
            step = tf.Variable(0, dtype=tf.int64, trainable=False)
            optimizer = optimizers.build('adam', lambda: setup.schedule(step))
            task.compile_for_run(model, optimizer)
            optimizer.build(model.trainable_variables)
            task.check(model, setup.examples, setup.examples.element_spec, strategy)
        trainer_loop = loop.Loop(model, optimizer, strategy, step, tf.summary.create_noop_writer(),
                                 setup.batches)
        float(trainer_loop.repeat_step(batch, 20)[1])  # traces and compiles outside the timing
        began = time.perf_counter()
        float(trainer_loop.repeat_step(batch, steps)[1])
        return time.perf_counter() - began
    return window


def _loop(setup, folder, strategy='auto', input_path='memory'):
    runs = iter(range(1_000_000))

    def window(steps):
        # A new run each window; the controller's clock leaves out the first (tracing) loop call.
        first_call = config_lib.Config.steps_per_loop
        config = config_lib.Config(model_dir=os.path.join(folder, f'loop-{strategy}-{input_path}-{next(runs)}'),
                                   eval_split='', schedule='cosine_restarts', batch_size=setup.batch_size,
                                   train_steps=first_call + steps, strategy=strategy, input=input_path)
        result = api.run(config, interactive=False)
        return steps * setup.batch_size / result.examples_per_sec
    return window


class _EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.began = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self.began


def _fit(setup, steps_per_execution=1, eagerly=False):
    def window(steps):
        model = models.build('cnn', setup.info)
        model.compile(optimizer=optimizers.build('adam', setup.schedule),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=['accuracy'],
                      steps_per_execution=steps_per_execution)
        timer = _EpochTimer()
        tf.config.run_functions_eagerly(eagerly)
        try:
            # The first call traces and compiles; only the second is timed.
            for n in (max(2 * steps_per_execution, 20), steps):
                model.fit(setup.batches.dataset(), epochs=1, steps_per_epoch=n, verbose=0, callbacks=[timer],
                          shuffle=False)
        finally:
            tf.config.run_functions_eagerly(False)
        return timer.seconds
    return window


def _timed_windows(windows, steps, repeats, eager_steps=None):
    """Seconds per step of each contender in each of `repeats` rounds, contenders in rotating order."""
    names = tuple(windows)
    per_step = {name: [] for name in names}
    for repeat in range(repeats):
        for name in names[repeat % len(names):] + names[:repeat % len(names)]:
            n = eager_steps if name == 'eager' else steps
            per_step[name].append(windows[name](n) / n)
            print(f'  window {repeat + 1}/{repeats} {name:8s} {1000 * per_step[name][-1]:7.2f} ms/step', flush=True)
    return per_step


def _paired_ratios(per_step):
    """{'loop/<name>': median over rounds of (name's time / loop's time in that round)}: the loop's speed over each
    contender's. The machine's speed drifts over minutes; the windows of one round are close in time, so ratios
    within rounds are steadier than the ratio of the medians."""
    return {f'loop/{name}': statistics.median(other / loop for other, loop in zip(times, per_step['loop'], strict=True))
            for name, times in per_step.items() if name != 'loop'}


def _median_windows(windows, steps, repeats, eager_steps=None):
    """Seconds per step of each contender: the median of its `repeats` windows."""
    return {name: statistics.median(values)
            for name, values in _timed_windows(windows, steps, repeats, eager_steps).items()}


def replicas(out, batch_size, steps, repeats):
    distribute.create('mirrored', cpu_devices=2)  # splits the CPU before anything else starts TensorFlow
    setup = _Setup(batch_size, steps)
    with tempfile.TemporaryDirectory() as folder:
        seconds = _median_windows({'1 replica': _loop(setup, folder, 'one_device'),
                                   '2 replicas': _loop(setup, folder, 'mirrored')}, steps, repeats)
    rate = {name: batch_size / value for name, value in seconds.items()}
    result = {'examples_per_sec': rate, 'batch_size': batch_size, 'steps': steps, 'repeats': repeats,
              'machine': _machine()}
    lines = [f'The trainer (seed CNN, Fashion-MNIST, batch {batch_size} global) on the CPU split into 2 logical '
             f'devices; median of {repeats} windows of {steps} steps; {result["machine"]}.', '',
             '| strategy | replicas | ms/step | examples/s |', '|---|---:|---:|---:|',
             f'| one_device | 1 | {1000 * seconds["1 replica"]:.2f} | {rate["1 replica"]:.0f} |',
             f'| mirrored | 2 | {1000 * seconds["2 replicas"]:.2f} | {rate["2 replicas"]:.0f} |']
    _write(out, 'replicas', result, lines)


def _schedule_cost(schedule, count=20_000):
    """Seconds per evaluation of `schedule` at a changing step, in graph."""
    @tf.function
    def evaluate(n):
        total = tf.constant(0.0)
        for s in tf.range(n):
            total += schedule(s)
        return total
    float(evaluate(tf.constant(10, tf.int64)))
    began = time.perf_counter()
    float(evaluate(tf.constant(count, tf.int64)))
    return (time.perf_counter() - began) / count


def throughput(out, batch_size, steps, repeats):
    setup = _Setup(batch_size, steps)
    eager_steps = max(steps // 20, 20)
    with tempfile.TemporaryDirectory() as folder:
        windows = {'bare': _bare(setup), 'loop': _loop(setup, folder), 'loop_stream': _loop(setup, folder,
                                                                                            input_path='stream'),
                   'fit': _fit(setup),
                   'fit_fast': _fit(setup, steps_per_execution=50), 'eager': _fit(setup, eagerly=True)}
        per_step = _timed_windows(windows, steps, repeats, eager_steps)
    ms = {name: 1000 * statistics.median(values) for name, values in per_step.items()}
    rate = {name: 1000 * batch_size / value for name, value in ms.items()}
    ratios = {f'loop/{name}': rate['loop'] / rate[name] for name in CONTENDERS if name != 'loop'}
    paired = _paired_ratios(per_step)
    schedule_ms = 1000 * _schedule_cost(setup.schedule)
    result = {'examples_per_sec': rate, 'ms_per_step': ms, 'ratios': ratios, 'paired_ratios': paired,
              'window_ms_per_step': {name: [1000 * t for t in times] for name, times in per_step.items()},
              'batch_size': batch_size,
              'steps': steps, 'eager_steps': eager_steps, 'repeats': repeats,
              'schedule_ms_per_step': schedule_ms, 'schedule_share_of_loop_step': schedule_ms / ms['loop'],
              'peak_rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 'machine': _machine()}
    lines = [f'Seed CNN on Fashion-MNIST, batch {batch_size}, median of {repeats} windows of {steps} steps '
             f'({eager_steps} for eager); {result["machine"]}.', '',
             '| contender | ms/step | examples/s | loop ÷ contender | paired (median over rounds) |',
             '|---|---:|---:|---:|---:|']
    for name in CONTENDERS:
        ratio = ' | ' if name == 'loop' else f'{ratios[f"loop/{name}"]:.3f} | {paired[f"loop/{name}"]:.3f}'
        lines.append(f'| {name} | {ms[name]:.2f} | {rate[name]:.0f} | {ratio} |')
    lines += ['', f'The streamed path: loop_stream at {1 / paired["loop/loop_stream"]:.3f} x the loop\'s speed '
              '(paired).', f'Schedule (cosine_restarts) in graph: {1000 * schedule_ms:.1f} µs per step, '
              f'{100 * result["schedule_share_of_loop_step"]:.2f}% of a loop step. '
              f'Peak memory (RSS of the bench process): {result["peak_rss_mib"]:.0f} MiB.']
    _write(out, 'throughput', result, lines)


def _accuracy_runs(peak_lr):
    """(label, Config fields) of every schedule compared, all at the same peak rate."""
    common = {'initial_lr': peak_lr}
    runs = [('constant', 'constant', dict(common)),
            ('cosine', 'cosine', dict(common, warmup_epochs=1)),
            ('cosine_restarts', 'cosine_restarts', dict(common)),
            ('polynomial', 'polynomial', dict(common)),
            ('one_cycle', 'one_cycle', dict(common, min_lr=peak_lr / 25))]
    return [(label, {'schedule': name, 'schedule_params': params}) for label, name, params in runs]


def _config_of_flags(*args):
    """The Config trainer.main would build from these command-line arguments."""
    values = flags.FlagValues()
    trainer_flags.define(values)
    values(['bench', *args])
    return trainer_flags.to_config(values)


def _best_config_fields(epochs):
    config = _config_of_flags(f'--flagfile={BEST_FLAGS}', f'--epochs={epochs}')
    return {k: v for k, v in vars(config).items() if k not in ('model_dir', 'epochs')}


def accuracy(out, epochs, peak_lr):
    runs = _accuracy_runs(peak_lr) + [('best (configs/fashion_mnist_best.flags)', _best_config_fields(epochs))]
    results = {}
    for label, fields in runs:
        folder = os.path.join(out, 'runs', label.split()[0])
        print(f'{label}: {epochs} epochs in {folder}', flush=True)
        result = api.run(config_lib.Config(model_dir=folder, epochs=epochs, **fields), interactive=False)
        results[label] = {'accuracy': [e['accuracy'] for e in result.evaluations], 'seconds': result.seconds}
    lines = [f'Seed CNN on Fashion-MNIST, test accuracy after each epoch (peak rate {peak_lr:g}); '
             f'{_machine()}.', '',
             '| schedule | ' + ' | '.join(str(e + 1) for e in range(epochs)) + ' | best | wall time |',
             '|---|' + '---:|' * (epochs + 2)]
    for label, values in results.items():
        cells = ' | '.join(f'{100 * a:.2f}' for a in values['accuracy'])
        lines.append(f'| {label} | {cells} | {100 * max(values["accuracy"]):.2f} | {values["seconds"]:.0f} s |')
    _write(out, 'accuracy', {'epochs': epochs, 'peak_lr': peak_lr, 'runs': results, 'machine': _machine()},
           lines)
    _plot(os.path.join(out, 'accuracy.png'), results)


QUICK_FLAGS = os.path.join(os.path.dirname(BEST_FLAGS), 'quick.flags')
# Peaks of the fixed-rate grid, per optimizer (SGD with momentum 0.9).
GRID = {'adam': (3e-4, 1e-3, 3e-3, 1e-2), 'sgd': (1e-2, 3e-2, 1e-1, 3e-1)}


def _quick_config(folder, optimizer, initial_lr):
    # --deterministic: a run at the rate auto finds is then the very run auto trains, and differences between
    # peaks are not run-to-run noise (without it the same run varies by up to 0.4 points here).
    return _config_of_flags(f'--flagfile={QUICK_FLAGS}', f'--optimizer={optimizer}', '--momentum=0.9',
                            f'--initial_lr={initial_lr}', f'--model_dir={folder}', '--deterministic')


def find_lr(out):
    """The range test on configs/quick.flags for Adam and SGD (momentum 0.9): its suggestion by every rule and its
    time, the final accuracy of a grid of fixed peaks, and of --initial_lr=auto (range test included)."""
    results = {}
    # TensorFlow's first graphs in a process cost seconds of their own: not the range test's.
    api.find_lr_run(_quick_config(os.path.join(out, 'runs', 'warm-up'), 'adam', 1e-3),
                    os.path.join(out, 'runs', 'warm-up'), interactive=False)
    for optimizer, grid in GRID.items():
        folder = os.path.join(out, 'runs', optimizer)
        test = api.find_lr_run(_quick_config(folder + '-auto', optimizer, 1e-3), folder + '-range', interactive=False)
        entry = {'suggestion': test.suggestion, 'rule': range_test.RULE, 'drawn_range_test_seconds': test.seconds,
                 'candidates': range_test.candidates(test.rates, test.smoothed), 'steps': len(test.losses),
                 'grid': {}}
        for peak in grid:
            run = api.run(_quick_config(f'{folder}-{peak:g}', optimizer, peak), interactive=False)
            entry['grid'][f'{peak:g}'] = {'accuracy': run.final['accuracy'], 'seconds': run.seconds}
        # What --initial_lr=auto runs before training: the same test, not drawn.
        entry['range_test_seconds'] = api.find_lr_run(_quick_config(folder + '-auto', optimizer, 1e-3),
                                                      folder + '-range-undrawn', interactive=False, draw=False).seconds
        auto = api.run(_quick_config(folder + '-auto', optimizer, 'auto'), interactive=False)
        entry['auto'] = {'accuracy': auto.final['accuracy'], 'seconds': auto.seconds,
                         'found': json.load(open(os.path.join(folder + '-auto', 'config.json')))['found_initial_lr']}
        results[optimizer] = entry
    lines = [f'Range test on configs/quick.flags (seed CNN, Fashion-MNIST, batch 32, 3 epochs, cosine); {_machine()}.',
             '', '| optimizer | steepest | valley | minimum/10 | range test | grid: final accuracy at each peak | '
             'best of grid | auto (rate) | auto - best |', '|---|---:|---:|---:|---:|---|---:|---:|---:|']
    for optimizer, entry in results.items():
        grid = entry['grid']
        best = max(v['accuracy'] for v in grid.values())
        cells = ', '.join(f'{peak}: {100 * v["accuracy"]:.2f}' for peak, v in grid.items())
        found = entry['candidates']
        share = entry['range_test_seconds'] / (entry['range_test_seconds'] + entry['auto']['seconds'])
        lines.append(f'| {optimizer} | {found.get("steepest", float("nan")):.3g} | {found.get("valley", float("nan")):.3g} '
                     f'| {found.get("minimum/10", float("nan")):.3g} | {entry["steps"]} steps, '
                     f'{entry["range_test_seconds"]:.1f} s ({100 * share:.1f}% of the auto run with it) | {cells} | '
                     f'{100 * best:.2f} | {100 * entry["auto"]["accuracy"]:.2f} ({entry["auto"]["found"]:.3g}) | '
                     f'{100 * (entry["auto"]["accuracy"] - best):+.2f} |')
    _write(out, 'find_lr', {'runs': results, 'rule': range_test.RULE, 'machine': _machine()}, lines)


def _plot(path, results):
    try:
        import matplotlib
    except ImportError:
        logging.warning("matplotlib is not installed: no accuracy.png (pip install 'stepwise[plot]')")
        return
    matplotlib.use('Agg')
    from matplotlib import pyplot
    fig, axes = pyplot.subplots(figsize=(8, 4.5), dpi=100)
    for label, values in results.items():
        epochs = range(1, len(values['accuracy']) + 1)
        axes.plot(epochs, [100 * a for a in values['accuracy']], marker='o', markersize=3, label=label)
    axes.axhline(91.56, color='gray', linestyle=':', linewidth=1, label="the seed's 15-epoch result")
    axes.set_xlabel('epoch')
    axes.set_ylabel('test accuracy (%)')
    axes.set_ylim(bottom=88)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    pyplot.close(fig)


def _machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    return f'{os.cpu_count()} cores {cpu}, TensorFlow {tf.__version__}'


def _write(out, name, result, lines):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f'{name}.json'), 'w') as f:
        json.dump(result, f, indent=2)
    with open(os.path.join(out, f'{name}.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print('\n'.join(lines))
    print(f'wrote {out}/{name}.json and {name}.md')


def main(argv):
    tf.get_logger().setLevel('WARNING')
    logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        print(f'error: unexpected arguments: {" ".join(argv[1:])}', file=sys.stderr)
        sys.exit(2)
    if FLAGS.steps % 200:
        print(f'error: --steps={FLAGS.steps} must be a multiple of 200 (the loop calls and fit_fast windows)',
              file=sys.stderr)
        sys.exit(2)
    try:
        if FLAGS.accuracy:
            accuracy(FLAGS.out, FLAGS.epochs, FLAGS.peak_lr)
        elif FLAGS.find_lr:
            find_lr(FLAGS.out)
        elif FLAGS.replicas:
            replicas(FLAGS.out, FLAGS.batch_size, FLAGS.steps, FLAGS.repeats)
        else:
            throughput(FLAGS.out, FLAGS.batch_size, FLAGS.steps, FLAGS.repeats)
    except (config_lib.ConfigError, data.DataError) as e:
        print(f'error: {" ".join(str(e).split())}', file=sys.stderr)
        sys.exit(2)


if __name__ == '__main__':
    app.run(main)
