"""Resolves a Config into what the run needs: data, lengths in steps and the schedule, all checked.

Nothing here writes a file, so every bad setting (unknown name, bad split, batch larger than the split,
a warmup longer than the run, a negative rate) is reported before a model_dir is touched.
"""
import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf

import schedules
from schedules import flags as schedule_flags
from trainer import config as config_lib
from trainer import data, models

ConfigError = config_lib.ConfigError


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A checked run: its config, data, length and learning-rate schedule."""
    config: config_lib.Config
    info: data.DatasetInfo
    train_examples: tf.data.Dataset  # unbatched (image uint8, label int64)
    num_train: int
    eval_examples: tf.data.Dataset | None
    steps_per_epoch: int
    total_steps: int
    schedule: keras.optimizers.schedules.LearningRateSchedule

    def hparams(self):
        """The run's hyperparameters as flat {name: bool|int|float|str}, schedule lengths in steps."""
        values = {k: v for k, v in self.config.as_dict().items()
                  if not k.startswith('schedule.') and k not in config_lib.RESUMABLE_CHANGES}
        values.update({f'schedule.{k}': v for k, v in _schedule_config(self.schedule).items()})
        values['total_steps'] = self.total_steps
        return {k: v if isinstance(v, (bool, int, float, str)) else
                ','.join(map(str, v)) if isinstance(v, list) else str(v) for k, v in values.items() if v is not None}


def prepare(config, train_data=None, eval_data=None, num_classes=None, schedule=None, model_given=False):
    """Checks `config` against its data and builds the schedule; raises ConfigError or data.DataError.

    train_data/eval_data: unbatched (image, label) datasets instead of the tfds `config.dataset`;
    num_classes: their class count (default: the largest label + 1);
    schedule: a LearningRateSchedule or a float instead of `config.schedule`;
    model_given: a model is passed in, so `config.model` names no registry entry.
    """
    if not model_given and config.model not in models.names():
        raise ConfigError(f'--model={config.model!r} is not one of: {", ".join(models.names())}')
    if train_data is None:
        info, train, num_train = _from_tfds(config)
        evaluation = eval_data if eval_data is not None else _tfds_eval(config)
    else:
        info, train, num_train = _from_dataset(config, train_data, num_classes)
        evaluation = eval_data
    if 'cutout' in config.augment and config.cutout_size > min(info.image_shape[:2]):
        raise ConfigError(f'--cutout_size={config.cutout_size} is larger than the {config.dataset} images '
                          f'({info.image_shape[0]}x{info.image_shape[1]})')
    steps_per_epoch = data.steps_per_epoch(num_train, config.batch_size)
    if config.train_steps is not None:
        total = config.train_steps
    else:
        total = max(1, round(config.epochs * steps_per_epoch))
    if schedule is None:
        schedule = _build_schedule(config, steps_per_epoch, total)
    elif isinstance(schedule, (int, float)):
        schedule = _checked(lambda: schedules.get('constant', initial_lr=schedule), {})
    return Experiment(config=config, info=info, train_examples=train, num_train=num_train,
                      eval_examples=evaluation, steps_per_epoch=steps_per_epoch, total_steps=total,
                      schedule=schedule)


def _from_tfds(config):
    info = data.info(config.dataset, config.data_dir)
    num_train = data.num_examples(config.dataset, config.train_split, config.data_dir)
    if num_train == 0:
        raise ConfigError(f'--train_split={config.train_split!r} selects no examples of {config.dataset}')
    return info, data.load(config.dataset, config.train_split, config.data_dir), num_train


def _tfds_eval(config):
    if not config.eval_split:
        return None
    data.num_examples(config.dataset, config.eval_split, config.data_dir)  # checks the split
    return data.load(config.dataset, config.eval_split, config.data_dir)


def _from_dataset(config, dataset, num_classes):
    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2 and spec[0].shape.rank == 3
            and spec[0].shape.is_fully_defined() and spec[1].shape.rank == 0
            and spec[1].dtype.is_integer):
        raise ConfigError(f'train_data must hold unbatched (image [H, W, C], integer label) pairs, got {spec}')
    labels = np.concatenate([batch.numpy() for batch in dataset.map(lambda _, y: y).batch(65536)] or
                            [np.zeros([0], np.int64)])
    if labels.size == 0:
        raise ConfigError('train_data is empty')
    if labels.min() < 0:
        raise ConfigError(f'train_data has a negative label ({labels.min()})')
    if num_classes is None:
        num_classes = int(labels.max()) + 1
    elif labels.max() >= num_classes:
        raise ConfigError(f'num_classes={num_classes} but train_data has label {labels.max()}')
    info = data.DatasetInfo(name=config.dataset, image_shape=tuple(spec[0].shape.as_list()),
                            num_classes=num_classes, class_names=tuple(str(i) for i in range(num_classes)))
    cast = dataset.map(lambda x, y: (tf.cast(x, tf.uint8) if x.dtype != tf.uint8 else x, tf.cast(y, tf.int64)))
    return info, cast, int(labels.size)


def _epoch_steps(epochs_name, value, steps_per_epoch):
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ConfigError(f'--{epochs_name}={value!r} must be finite numbers of epochs >= 0')
    steps = [round(v * steps_per_epoch) for v in values]
    return steps if isinstance(value, (list, tuple)) else steps[0]


def _build_schedule(config, steps_per_epoch, total):
    if config.schedule not in schedules.names():
        raise ConfigError(f'--schedule={config.schedule!r} is not one of: {", ".join(schedules.names())}')
    given, source = {}, {}
    for name, value in config.schedule_params:
        steps_name = config_lib.EPOCH_PARAMETERS.get(name)
        if steps_name:
            given[steps_name] = _epoch_steps(name, value, steps_per_epoch)
            source[steps_name] = name
        else:
            given[name] = list(value) if isinstance(value, tuple) else value
    warmup = given.get('warmup_steps')
    if isinstance(warmup, int) and warmup >= total:
        flag = source.get('warmup_steps', 'warmup_steps')
        raise ConfigError(f'--{flag}={dict(config.schedule_params)[flag]} is a warmup of {warmup} steps, not '
                          f'shorter than the run ({total} steps); lower it or train longer')
    return _checked(lambda: schedule_flags.build(config.schedule, given, total), source)


def _checked(build, source):
    """Runs `build`, turning a schedules.ParameterError into a ConfigError naming the flag the user set."""
    try:
        return build()
    except schedules.ParameterError as e:
        name = e.parameter.split('[')[0]
        flag = source.get(name, name)
        note = f' ({flag} converted to {name})' if flag != name else ''
        raise ConfigError(f'--{flag}: {e}{note}') from None


def _schedule_config(schedule):
    try:
        return schedule.get_config()
    except NotImplementedError:  # a user's schedule without get_config
        return {}
