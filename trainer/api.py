"""The trainer as a Python function: a compiled Keras model and tf.data datasets (or the built-in image task)."""
import dataclasses
import functools

import keras
import tensorflow as tf

from trainer import config as config_lib
from trainer import controller, distribute, experiment, models, optimizers, task


def train(model='cnn', train_data='fashion_mnist', eval_data=None, *, model_dir, loss=None, metrics=None,
          optimizer='adam', schedule='cosine_restarts', schedule_params=None, num_classes=None, interactive=None,
          **settings):
    """Trains `model` on `train_data` with the loop of `python -m trainer.main`; returns a controller.Result.

    model: a keras.Model, or a function (info) -> keras.Model, built under the distribution strategy's scope
        (the portable form; a built model trains on one device only); info is the tfds DatasetInfo for a tfds
        name, else the train_data's element spec. Or a built-in image classifier's name ('cnn', 'mlp'): for a
        tfds name, or for train_data of (image [H, W, C], integer label) with `num_classes` classes (default:
        the largest label + 1).
    train_data: an unbatched, finite tf.data.Dataset of (features, labels) or (features, labels,
        sample_weights), each any nest (tensor, tuple, dict) of any dtype with a fixed shape per example; it
        is held in memory and must not shuffle (the loop orders it by (seed, step)). Or a tfds
        image-classification name (with `train_split` / `eval_split` / `data_dir` settings).
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
    exp = experiment.prepare(config, train_data=train_data if custom_data else None, eval_data=eval_data,
                             schedule=schedule, model_given=not isinstance(model, str), num_classes=num_classes)
    return controller.run(exp, model_fn, interactive, strategy, loss=loss, metrics=metrics,
                          optimizer=optimizer_instance)


# Config fields that train() fills from its own arguments.
_SET_HERE = {'model_dir', 'dataset', 'model', 'schedule', 'schedule_params', 'optimizer', 'optimizer_params',
             'loss', 'metrics', 'train_data_sha256'}


def run(config, interactive=None):
    """Trains the run `config` (a trainer.config.Config) describes: a built-in model on tfds data."""
    strategy = _strategy(config)
    exp = experiment.prepare(config)
    return controller.run(exp, functools.partial(models.build, config.model), interactive, strategy)


def _strategy(config):
    # First: the devices must be configured before TensorFlow runs anything (reading the data does).
    strategy = distribute.create(config.strategy, config.num_gpus, config.cpu_devices)
    distribute.check_batch(strategy, config.batch_size)
    return strategy
