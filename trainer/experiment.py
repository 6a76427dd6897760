"""Resolves a Config into what the run needs: examples, lengths in steps and the schedule, all checked.

Nothing here writes a file, so every bad setting (unknown name, bad split, a batched or infinite dataset, a
batch larger than the split, a warmup longer than the run, a schedule that fails) is reported before a
model_dir is touched. Two sources of examples: a tfds name (the built-in image task: trainer.tfds_data,
trainer.models, trainer.augment) or the user's unbatched tf.data datasets.
"""
import dataclasses
import math

import keras
import tensorflow as tf

import schedules
from schedules import flags as schedule_flags
from trainer import augment, data, models, task, tfds_data
from trainer import config as config_lib

ConfigError = config_lib.ConfigError

# Steps at which a schedule object's rates identify it in config.json, as fractions of the run (and step 0, 1).
_PROBES = 16


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A checked run: its config, examples, length and learning-rate schedule.

    info: what a model function is given, a tfds_data.DatasetInfo or the examples' element spec;
    element_spec: (features, labels[, sample_weights]) of one example; transform: the training batches'
    augmentation (trainer.augment) or None; serving_outputs: the export's map of the model's outputs, or None;
    model_given: the model is the user's (its loss and metrics are recorded with the run's settings);
    user_data: the examples are the user's dataset, not a tfds split (a digest of them is recorded).
    """
    config: config_lib.Config
    info: object
    element_spec: tuple
    train_examples: tf.data.Dataset
    num_train: int
    eval_examples: tf.data.Dataset | None
    steps_per_epoch: int
    total_steps: int
    schedule: keras.optimizers.schedules.LearningRateSchedule
    transform: object = None
    serving_outputs: object = None
    model_given: bool = False
    user_data: bool = False

    def hparams(self):
        """The run's hyperparameters as flat {name: bool|int|float|str}, schedule lengths in steps."""
        values = {k: v for k, v in self.config.as_dict().items()
                  if not k.startswith('schedule.') and k not in config_lib.RESUMABLE_CHANGES
                  and k != 'train_data_sha256'}
        values.update({f'schedule.{k}': v for k, v in _schedule_config(self.schedule).items()})
        values['total_steps'] = self.total_steps
        return {k: v if isinstance(v, (bool, int, float, str)) else
                ','.join(map(str, v)) if isinstance(v, list) else str(v) for k, v in values.items() if v is not None}


def prepare(config, train_data=None, eval_data=None, schedule=None, model_given=False, num_classes=None):
    """Checks `config` against its data and builds the schedule; raises ConfigError or data.DataError.

    train_data/eval_data: unbatched datasets of (features, labels[, sample_weights]) instead of the tfds
    `config.dataset`; schedule: a LearningRateSchedule, a callable step -> rate or a float instead of
    `config.schedule`; model_given: a model is passed in, so `config.model` names no registry entry (else the
    built-in image classifier trains on train_data's images, of num_classes classes: default, counted).
    A schedule object's identity (its config, its rates at probe steps) goes into the Experiment's config.
    """
    if not model_given and config.model not in models.names():
        raise ConfigError(f'--model={config.model!r} is not one of: {", ".join(models.names())}')
    builtin = train_data is None
    if builtin:
        info, train, num_train = _from_tfds(config)
        evaluation = eval_data if eval_data is not None else _tfds_eval(config)
        spec = train.element_spec
        if eval_data is not None:
            data.check_examples(eval_data, 'eval_data', like=spec)
    else:
        spec = data.check_examples(train_data, 'train_data')
        if eval_data is not None:
            data.check_examples(eval_data, 'eval_data', like=spec)
        info, train, num_train, evaluation = spec, train_data, int(train_data.cardinality()), eval_data
        if not model_given:
            info = tfds_data.info_of(train_data, num_classes)
    try:
        augment.check(config.augment, config.cutout_size, spec[0])
    except ValueError as e:
        raise ConfigError(str(e)) from None
    steps_per_epoch = data.steps_per_epoch(num_train, config.batch_size)
    if config.train_steps is not None:
        total = config.train_steps
    else:
        total = max(1, round(config.epochs * steps_per_epoch))
    if schedule is None:
        schedule = _build_schedule(config, steps_per_epoch, total)
    elif isinstance(schedule, (int, float)) and not isinstance(schedule, bool):
        rate = schedule
        schedule = _checked(lambda: schedules.get('constant', initial_lr=rate), {})
        config = dataclasses.replace(config, schedule='constant', schedule_params={'initial_lr': rate})
    else:
        schedule, identity = _user_schedule(schedule, total)
        config = dataclasses.replace(config, schedule=identity.pop('name'), schedule_params=identity)
    return Experiment(config=config, info=info, element_spec=spec, train_examples=train, num_train=num_train,
                      eval_examples=evaluation, steps_per_epoch=steps_per_epoch, total_steps=total,
                      schedule=schedule, transform=augment.transform(config.augment, config.cutout_size),
                      serving_outputs=None if model_given else models.serving_outputs, model_given=model_given,
                      user_data=not builtin)


def _from_tfds(config):
    info = tfds_data.info(config.dataset, config.data_dir)
    num_train = tfds_data.num_examples(config.dataset, config.train_split, config.data_dir)
    if num_train == 0:
        raise ConfigError(f'--train_split={config.train_split!r} selects no examples of {config.dataset}')
    return info, tfds_data.load(config.dataset, config.train_split, config.data_dir), num_train


def _tfds_eval(config):
    if not config.eval_split:
        return None
    tfds_data.num_examples(config.dataset, config.eval_split, config.data_dir)  # checks the split
    return tfds_data.load(config.dataset, config.eval_split, config.data_dir)


@keras.saving.register_keras_serializable('stepwise')
class FunctionSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A plain function step -> rate as a Keras schedule (it is called with the int64 step tensor)."""

    def __init__(self, function):
        super().__init__()
        self.function = function

    def __call__(self, step):
        return tf.cast(self.function(step), tf.float32)  # a Python number too

    def get_config(self):
        return {'function': keras.saving.serialize_keras_object(self.function)}

    @classmethod
    def from_config(cls, config):
        return cls(keras.saving.deserialize_keras_object(config['function']))


def _user_schedule(schedule, total_steps):
    """(the schedule as a LearningRateSchedule, {'name', 'config', 'rates_at_probe_steps'}) of a schedule object
    or callable, tried at probe steps: a schedule that fails there or gives no rate >= 0 is a ConfigError."""
    if not callable(schedule):
        raise ConfigError(f'schedule={schedule!r} must be a name from schedules.names(), a number, a '
                          'keras.optimizers.schedules.LearningRateSchedule or a callable step -> rate')
    as_keras = schedule if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule) \
        else FunctionSchedule(schedule)
    description = task.describe(schedule)
    name = description['class'] if isinstance(description, dict) else description
    probes = sorted({0, 1, total_steps, *(total_steps * k // _PROBES for k in range(1, _PROBES))})
    rates = []
    for step in probes:
        try:
            rate = float(tf.convert_to_tensor(as_keras(tf.constant(step, tf.int64))))
        except Exception as e:  # noqa: BLE001: the user's code, said in one line
            raise ConfigError(f'schedule={name} fails at step {step}: {type(e).__name__}: {data.one_line(e)}') \
                from None
        if not rate >= 0:  # NaN too; an infinite rate (a float32 overflow) is the non-finite guard's to stop
            raise ConfigError(f'schedule={name} gives the rate {rate} at step {step}; rates must be numbers >= 0')
        rates.append(rate)
    identity = {'name': name, 'rates_at_probe_steps': [[s, r] for s, r in zip(probes, rates)]}
    if isinstance(description, dict):
        identity['config'] = description['config']
    return as_keras, identity


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
    if given.get('initial_lr') == 'auto':
        if config.found_initial_lr is None:
            raise ConfigError('--initial_lr=auto is resolved by trainer.main and trainer.train (a range test); '
                              'here give --initial_lr a number')
        given['initial_lr'] = config.found_initial_lr
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
    except Exception:  # noqa: BLE001: a user's schedule without a (working) get_config
        return {}
