"""The trainer as a Python function: any Keras model, tf.data datasets or a tfds name, any schedule."""
import functools

import keras
import tensorflow as tf

from trainer import config as config_lib
from trainer import controller, distribute, experiment, models


def train(model='cnn', train_data='fashion_mnist', eval_data=None, schedule='cosine_restarts', *,
          model_dir, schedule_params=None, num_classes=None, interactive=None, **settings):
    """Trains `model` and returns a trainer.controller.Result (final model, evaluations, export path).

    model: a name from trainer.models ('cnn', 'mlp'), a function (DatasetInfo) -> keras.Model (built under
        the distribution strategy's scope: the portable choice), or a keras.Model. Its outputs are logits.
    train_data: a tfds name (with `train_split`/`eval_split`/`data_dir` settings) or an unbatched
        tf.data.Dataset of (image [H, W, C] raw 0..255, integer label).
    eval_data: an unbatched dataset like train_data; None: the tfds `eval_split`, or no evaluation for a
        dataset train_data.
    schedule: a name from schedules.names() (with `schedule_params`, lengths in steps or in *_epochs), a
        keras LearningRateSchedule, or a float (constant rate).
    num_classes: for dataset train_data (default: the largest label + 1).
    interactive: progress bars (True) or log lines (False); default: whether stdout is a terminal.
    settings: any other trainer.config.Config field: batch_size, epochs or train_steps, optimizer, seed, ...

    A ConfigError or trainer.data.DataError is raised before anything is written to model_dir.

    >>> import tensorflow as tf, trainer                                                  # doctest: +SKIP
    >>> images = tf.random.uniform([256, 8, 8, 1], maxval=256, dtype=tf.int32)           # doctest: +SKIP
    >>> pairs = tf.data.Dataset.from_tensor_slices((images, tf.range(256) % 2))           # doctest: +SKIP
    >>> trainer.train('mlp', pairs, schedule=1e-3, model_dir='/tmp/run', epochs=2)        # doctest: +SKIP
    """
    fields = dict(settings, model_dir=model_dir, schedule_params=schedule_params or {})
    custom_data = isinstance(train_data, tf.data.Dataset)
    fields['dataset'] = 'custom' if custom_data else train_data
    if isinstance(schedule, str):
        fields['schedule'], schedule = schedule, None
    else:
        fields['schedule'] = repr(schedule)
    if isinstance(model, str):
        model_fn = functools.partial(models.build, model)
        fields['model'] = model
    elif isinstance(model, keras.Model):
        model_fn = lambda info: model  # noqa: E731 (a model built outside the strategy's scope)
        fields['model'] = model.name
    else:
        model_fn = model
        fields['model'] = getattr(model, '__name__', type(model).__name__)
    config = config_lib.Config(**fields)
    strategy = _strategy(config)
    if isinstance(model, keras.Model) and strategy is not tf.distribute.get_strategy():
        raise config_lib.ConfigError(f'a built keras.Model trains on one device only; for --strategy='
                                     f'{config.strategy} pass a function (DatasetInfo) -> keras.Model')
    exp = experiment.prepare(config, train_data=train_data if custom_data else None, eval_data=eval_data,
                             num_classes=num_classes, schedule=schedule, model_given=not isinstance(model, str))
    return controller.run(exp, model_fn, interactive, strategy)


def run(config, interactive=None):
    """Trains the run `config` (a trainer.config.Config) describes: registry model, tfds data."""
    strategy = _strategy(config)
    exp = experiment.prepare(config)
    return controller.run(exp, functools.partial(models.build, config.model), interactive, strategy)


def _strategy(config):
    # First: the devices must be configured before TensorFlow runs anything (reading the data does).
    strategy = distribute.create(config.strategy, config.num_gpus, config.cpu_devices)
    distribute.check_batch(strategy, config.batch_size)
    return strategy
