"""The trainer as a Python function: a compiled Keras model and tf.data datasets (or the built-in image task)."""
import dataclasses
import functools
import os

import keras
import tensorflow as tf

from trainer import config as config_lib
from trainer import controller, distribute, experiment, faults, models, optimizers, progress, range_test, rundir, task


def train(model='cnn', train_data='fashion_mnist', eval_data=None, *, model_dir, loss=None, metrics=None,
          optimizer='adam', schedule='cosine_restarts', schedule_params=None, num_classes=None, interactive=None,
          **settings):
    """Trains `model` on `train_data` with the loop of `python -m trainer.main`; returns a controller.Result.

    model: a keras.Model, or a function (info) -> keras.Model, built under the distribution strategy's scope
        (the portable form; a built model trains on one device only); info is the tfds DatasetInfo for a tfds
        name, else the train_data's element spec. Or a built-in image classifier's name ('cnn', 'mlp'): for a
        tfds name, or for train_data of (image [H, W, C], integer label) with `num_classes` classes (default:
        the largest label + 1).
    train_data: an unbatched tf.data.Dataset of (features, labels) or (features, labels, sample_weights),
        each any nest (tensor, tuple, dict) of any dtype with a fixed shape per example, that does not shuffle
        (the loop orders it by (seed, step)). It is held in memory when its size is known and fits
        `memory_budget_mb` (the `input` setting: 'auto', 'memory', 'stream'), else streamed (trainer.stream);
        a stream may be of unknown size or infinite (with `train_steps`). Or a function
        tf.distribute.InputContext -> such a dataset, streamed, each input shard reading its own part (of
        `input_shards`; each worker reads only its shards). Or a tfds image-classification name (with
        `train_split` / `eval_split` / `data_dir` settings), a folder of images or an .npz file.
    eval_data: an unbatched dataset like train_data; None: the tfds `eval_split`, or no evaluation.
    loss, metrics: as for model.compile, replacing what the model was compiled with; the step calls
        model.compute_loss and model.compute_metrics, so an override of either trains unchanged.
    optimizer: a name (trainer.optimizers.names(), TensorFlow's fused kernels), or a new keras.optimizers
        instance: a copy of it made under the strategy's scope trains, with its rate replaced by the schedule.
    schedule: a name from schedules.names() (with `schedule_params`, lengths in steps or in *_epochs), any
        keras LearningRateSchedule, a callable int64 step tensor -> rate, or a number (constant rate).
    interactive: progress bars (True) or log lines (False); default: whether stdout is a terminal.
    strategy (a setting): a name (trainer.distribute.NAMES), or a tf.distribute.Strategy made before the data:
        devices and a cluster's collectives are set up when TensorFlow starts, which making a dataset does.
    settings: any other trainer.config.Config field: batch_size, epochs or train_steps, seed, ...

    A ConfigError or trainer.data.DataError is raised before anything is written to model_dir;
    trainer.faults.Interrupted (SIGTERM, Ctrl-C: a checkpoint was saved, rerun to resume) and
    trainer.faults.Stop (a non-finite step or a failed write: nothing bad saved) after the run started.

    >>> import keras, tensorflow as tf, trainer                                              # doctest: +SKIP
    >>> x = tf.random.normal([256, 10]); y = tf.reduce_sum(x, axis=1)                        # doctest: +SKIP
    >>> model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(1)])                # doctest: +SKIP
    >>> model.compile(loss='mse', metrics=['mae'])                                           # doctest: +SKIP
    >>> trainer.train(model, tf.data.Dataset.from_tensor_slices((x, y)), model_dir='/tmp/r',
    ...               schedule=1e-2, epochs=2)                                               # doctest: +SKIP
    """
    call = _call(model, train_data, eval_data, model_dir, loss, metrics, optimizer, schedule, schedule_params,
                 num_classes, settings)
    return _train(call, interactive)


def run(config, interactive=None):
    """Trains the run `config` (a trainer.config.Config) describes: a built-in model on tfds data."""
    return _train(_Call(config, _strategy(config), functools.partial(models.build, config.model)), interactive)


def find_lr(model='cnn', train_data='fashion_mnist', *, out, min_lr=1e-7, max_lr=10.0, num_steps=100, loss=None,
            metrics=None, optimizer='adam', num_classes=None, interactive=None, **settings):
    """The learning-rate range test (trainer.range_test) of `model` on `train_data`, with the same arguments
    and settings as `train` (data, batch, seed, optimizer, strategy); writes per-step scalars and the figure
    under `out`. Returns a range_test.Result: `suggestion` (None if the loss never decreased), `rule`,
    `rates`, `losses`, `smoothed`, `stopped`, `figure`, `seconds`."""
    call = _call(model, train_data, None, out, loss, metrics, optimizer, 1e-3, None, num_classes, settings)
    return search(call, out, min_lr, max_lr, num_steps, interactive)


def search(call, out, min_lr=1e-7, max_lr=10.0, num_steps=100, interactive=None, said_as='', draw=True):
    """The range test of a resolved call (find_lr, trainer.find_lr's CLI, --initial_lr=auto), said in the log."""
    range_test.schedule(min_lr, max_lr, num_steps)  # its settings checked before the data is read
    result = range_test.search(_prepared(call), call.model_fn, call.strategy, out, min_lr, max_lr, num_steps,
                               call.loss, call.metrics, call.optimizer, draw=draw)
    progress.Progress(1, 1, interactive).summary([said_as + _found_line(result)])
    return result


@dataclasses.dataclass(frozen=True)
class _Call:
    """A call's settings resolved: its Config, strategy, model function and the objects passed."""
    config: config_lib.Config
    strategy: object
    model_fn: object
    train_data: object = None
    eval_data: object = None
    schedule: object = None
    model_given: bool = False
    num_classes: int | None = None
    loss: object = None
    metrics: object = None
    optimizer: object = None


def _call(model, train_data, eval_data, model_dir, loss, metrics, optimizer, schedule, schedule_params, num_classes,
          settings):
    known = {field.name for field in dataclasses.fields(config_lib.Config)} - _SET_HERE
    unknown = sorted(set(settings) - known)
    if unknown:
        raise config_lib.ConfigError(f'{unknown[0]}= is not a setting; the settings are: {", ".join(sorted(known))}')
    fields = dict(settings, model_dir=model_dir, schedule_params=schedule_params or {})
    strategy = fields.get('strategy')
    if isinstance(strategy, tf.distribute.Strategy):
        fields['strategy'] = type(strategy).__name__
    custom_data = not isinstance(train_data, str)

    fields['dataset'] = 'custom' if custom_data else train_data
    if isinstance(schedule, str):
        fields['schedule'], schedule = schedule, None
    elif schedule_params:
        raise config_lib.ConfigError('schedule_params= go with a schedule name; a schedule object or number '
                                     'carries its own parameters')
    optimizer_instance = None
    if isinstance(optimizer, str):
        fields['optimizer'] = optimizer
    else:
        for name in ('momentum', 'weight_decay', 'ema_momentum'):
            if settings.get(name) is not None:
                raise config_lib.ConfigError(f'{name}= applies to a named optimizer; set it on the '
                                             f'{type(optimizer).__name__} instance instead')
        try:
            fields['optimizer_params'] = task.describe(optimizers.config_of(optimizer))
        except ValueError as e:
            raise config_lib.ConfigError(str(e)) from None
        fields['optimizer'] = task.class_name(type(optimizer))
        optimizer_instance = optimizer
    if isinstance(model, str):
        model_fn = functools.partial(models.build, model)
        fields['model'] = model
    elif isinstance(model, keras.Model):
        model_fn = lambda info: model  # noqa: E731 (a model built outside the strategy's scope)
        fields['model'] = task.class_name(type(model))  # not model.name: Keras numbers those per process
    elif callable(model):
        model_fn = model
        fields['model'] = task.describe(model) if not isinstance(model, type) else task.class_name(model)
    else:
        raise config_lib.ConfigError(f'model={model!r} must be a keras.Model, a function info -> keras.Model '
                                     f'or one of: {", ".join(models.names())}')
    config = config_lib.Config(**fields)
    if isinstance(strategy, tf.distribute.Strategy):
        distribute.check_batch(strategy, config.batch_size)
    else:
        strategy = _strategy(config)
    if isinstance(model, keras.Model) and strategy is not tf.distribute.get_strategy():
        raise config_lib.ConfigError(f'a built keras.Model trains on one device only; for --strategy='
                                     f'{config.strategy} pass a function (info) -> keras.Model')
    return _Call(config, strategy, model_fn, train_data if custom_data else None, eval_data, schedule,
                 not isinstance(model, str), num_classes, loss, metrics, optimizer_instance)


# Config fields that train() fills from its own arguments, or that a run records (not settings).
_SET_HERE = {'model_dir', 'dataset', 'model', 'schedule', 'schedule_params', 'optimizer', 'optimizer_params',
             'loss', 'metrics', 'train_data_sha256', 'found_initial_lr', 'input_order', 'class_names', 'stream_sizes'}


def _prepared(call):
    return experiment.prepare(call.config, train_data=call.train_data, eval_data=call.eval_data,
                              schedule=call.schedule, model_given=call.model_given, num_classes=call.num_classes,
                              worker=distribute.input_pipeline(call.strategy))


def _train(call, interactive):
    call = _resolve_auto_rate(call, interactive)
    return controller.run(_prepared(call), call.model_fn, interactive, call.strategy, loss=call.loss,
                          metrics=call.metrics, optimizer=call.optimizer)


def _resolve_auto_rate(call, interactive):
    """--initial_lr=auto: the rate the range test found when the run started (config.json), or a new range test
    from the run's own initial weights and data (on a model of its own; the run's is built afresh after it);
    raises faults.Stop if it finds none."""
    config = call.config
    if dict(config.schedule_params).get('initial_lr') != 'auto':
        return call
    previous = rundir.previous(config.model_dir)
    if previous is not None and previous.get('found_initial_lr') is None:
        raise config_lib.ConfigError(
            f'--model_dir={config.model_dir} holds a run with schedule.initial_lr='
            f'{previous.get("schedule.initial_lr")!r}, not \'auto\'; rerun with the same settings to resume it, '
            'or use another --model_dir')
    if previous is not None:
        found = previous['found_initial_lr']
        progress.Progress(1, 1, interactive).summary(
            [f'--initial_lr=auto: {found:.3g}, found by the range test when the run started ({rundir.CONFIG})'])
    else:
        params = {k: v for k, v in config.schedule_params if k != 'initial_lr'}
        probe = dataclasses.replace(call, config=dataclasses.replace(config, schedule_params=params))
        result = search(probe, os.path.join(config.model_dir, 'range_test'), interactive=interactive,
                        said_as='--initial_lr=auto: ', draw=False)
        if result.suggestion is None:
            raise faults.Stop(f'--initial_lr=auto: the range test found no rate ({result.rule}; it ran '
                              f'{len(result.losses)} steps, {result.stopped}); give --initial_lr a number')
        found = result.suggestion
    return dataclasses.replace(call, config=dataclasses.replace(config, found_initial_lr=found))


def _found_line(result):
    if result.suggestion is None:
        return f'range test: no rate to suggest: {result.rule} ({len(result.losses)} steps, {result.stopped})'
    return (f'range test: suggested peak rate {result.suggestion:.3g} ({result.rule}; {len(result.losses)} steps, '
            f'{result.stopped}; {result.seconds:.1f} s)')


def _strategy(config):
    # First: the devices must be configured before TensorFlow runs anything (reading the data does).
    strategy = distribute.create(config.strategy, config.num_gpus, config.cpu_devices)
    distribute.check_batch(strategy, config.batch_size)
    return strategy


def find_lr_run(config, out, min_lr=1e-7, max_lr=10.0, num_steps=100, interactive=None, draw=True):
    """The range test of the run `config` describes (`python -m trainer.find_lr`): a built-in model on tfds data."""
    # --min_lr and --max_lr are the range's ends here, not the schedule's.
    config = dataclasses.replace(config, schedule_params={k: v for k, v in config.schedule_params
                                                          if k not in ('min_lr', 'max_lr', 'initial_lr')})
    call = _Call(config, _strategy(config), functools.partial(models.build, config.model))
    return search(call, out, min_lr, max_lr, num_steps, interactive, draw=draw)
