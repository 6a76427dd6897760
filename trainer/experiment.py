"""Resolves a Config into what the run needs: examples, lengths in steps and the schedule, all checked.

Nothing here writes a file, so every bad setting (unknown name, bad split, a batched or infinite dataset, a
batch larger than the split, a warmup longer than the run, a schedule that fails) is reported before a
model_dir is touched. Three sources of examples: a tfds name or a folder / .npz path (the built-in image task:
trainer.tfds_data, trainer.file_data, trainer.models, trainer.augment), or the user's unbatched tf.data
datasets (or a function of the input context). Each is held in memory or streamed (trainer.stream): --input,
or under auto, whether the training examples fit the memory budget.
"""
import dataclasses
import math
import os

import time

import keras
import tensorflow as tf

import schedules
from schedules import flags as schedule_flags
from trainer import augment, data, file_data, models, stream, task, tfds_data
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
    user_data: the examples are the user's dataset, not a tfds split (a digest of them is recorded);
    source: a trainer.stream source when the examples are streamed, else None (train_examples in memory);
    shards / owned_shards: a stream's input shards, and those this worker reads; memory_budget: bytes;
    input_line: where the examples are read from, and why, for the log.
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
    source: object = None
    input_line: str = ''
    shards: int = 1
    owned_shards: tuple = (0,)
    memory_budget: int = 0

    def hparams(self):
        """The run's hyperparameters as flat {name: bool|int|float|str}, schedule lengths in steps."""
        values = {k: v for k, v in self.config.as_dict().items()
                  if not k.startswith('schedule.') and k not in config_lib.RESUMABLE_CHANGES
                  and k != 'train_data_sha256'}
        values.update({f'schedule.{k}': v for k, v in _schedule_config(self.schedule).items()})
        values['total_steps'] = self.total_steps
        return {k: v if isinstance(v, (bool, int, float, str)) else
                ','.join(map(str, v)) if isinstance(v, list) else str(v) for k, v in values.items() if v is not None}


def prepare(config, train_data=None, eval_data=None, schedule=None, model_given=False, num_classes=None,
            worker=(0, 1)):
    """Checks `config` against its data and builds the schedule; raises ConfigError or data.DataError.

    train_data/eval_data: unbatched datasets of (features, labels[, sample_weights]) instead of the tfds
    `config.dataset` (train_data may also be a function tf.distribute.InputContext -> such a dataset, which is
    streamed, each input shard reading its own part); schedule: a LearningRateSchedule, a callable step ->
    rate or a float instead of `config.schedule`; model_given: a model is passed in, so `config.model` names no
    registry entry (else the built-in image classifier trains on train_data's images, of num_classes classes:
    default, counted); worker: (this worker's index, the number of workers).
    The path the examples take (in memory or streamed) and a schedule object's identity (its config, its rates
    at probe steps) go into the Experiment's config.
    """
    if not model_given and config.model not in models.names():
        raise ConfigError(f'--model={config.model!r} is not one of: {", ".join(models.names())}')
    budget = (config.memory_budget_mb or _default_budget_mb()) << 20
    builtin = train_data is None
    if builtin and file_data.is_file_dataset(config.dataset):
        found = _file_examples(config, eval_data, budget)
    elif builtin:
        found = _tfds_examples(config, eval_data, budget)
    else:
        found = _user_examples(config, train_data, eval_data, model_given, num_classes, worker, budget)
    info, spec, train, num_train, evaluation, source, why, digest = found
    if evaluation is not None and (eval_data is not None or not builtin):
        data.check_examples(evaluation, 'eval_data', like=spec)
    try:
        augment.check(config.augment, config.cutout_size, spec[0])
    except ValueError as e:
        raise ConfigError(str(e)) from None
    shards, steps_per_epoch, num_train, shard_sizes, notes = _lengths(config, source, num_train, worker)
    if config.train_steps is not None:
        total = config.train_steps
    else:
        total = max(1, round(config.epochs * steps_per_epoch))
    _check_buffer(config, source, shards, worker, budget)
    sequential = isinstance(source, stream.Sequential)
    # The shards change the order of a sequential stream, and an augmentation's draws (keyed per shard).
    # The shard sizes stand for what a stream is (it is not hashed): a resume on data of another size is refused.
    config = dataclasses.replace(config, input_order='sequential' if sequential else 'index',
                                 input_shards=shards if sequential or (source and config.augment and shards > 1)
                                 else None,
                                 stream_sizes=tuple(shard_sizes) if shard_sizes else None)
    if digest is not None:
        config = dataclasses.replace(config, train_data_sha256=digest)
        if info.class_names != tuple(map(str, range(info.num_classes))):
            config = dataclasses.replace(config, class_names=info.class_names)
    if schedule is None:
        schedule = _build_schedule(config, steps_per_epoch, total)
    elif isinstance(schedule, (int, float)) and not isinstance(schedule, bool):
        rate = schedule
        schedule = _checked(lambda: schedules.get('constant', initial_lr=rate), {})
        config = dataclasses.replace(config, schedule='constant', schedule_params={'initial_lr': rate})
    else:
        schedule, identity = _user_schedule(schedule, total)
        config = dataclasses.replace(config, schedule=identity.pop('name'), schedule_params=identity)
    owned = tuple(stream.owned_shards(shards, *worker))
    return Experiment(config=config, info=info, element_spec=spec, train_examples=train, num_train=num_train,
                      eval_examples=evaluation, steps_per_epoch=steps_per_epoch, total_steps=total,
                      schedule=schedule, transform=augment.transform(config.augment, config.cutout_size),
                      serving_outputs=None if model_given else models.serving_outputs(info.class_names),
                      model_given=model_given,
                      user_data=not builtin, source=source, shards=shards, owned_shards=owned, memory_budget=budget,
                      input_line=_input_line(config.input, why, source, num_train, spec, budget, shards, owned) + notes)


def _file_examples(config, eval_data, budget):
    """A folder or .npz (trainer.file_data): (info, spec, train, num_train, evaluation, source, why, digest)."""
    _check_file_flags(config)
    source, eval_source, info, digest = file_data.load(config.dataset, config.image_size, config.seed,
                                                       config.validation_split)
    if config.eval_dataset:
        eval_source = file_data.load_eval(config.eval_dataset, info, config.image_size)
    evaluation = eval_data if eval_data is not None else eval_source and eval_source.examples()
    why = _streams(config, source.num_examples, source.example_bytes, budget)
    return (info, source.element_spec, source.examples(), source.num_examples, evaluation, source if why else None,
            why, digest)


def _tfds_examples(config, eval_data, budget):
    if config.eval_dataset or config.validation_split or config.image_size:
        raise ConfigError('--eval_dataset, --validation_split and --image_size go with a folder or .npz '
                          f'--dataset; for the tfds dataset {config.dataset} use --train_split/--eval_split')
    info, train, num_train = _from_tfds(config)
    evaluation = eval_data if eval_data is not None else _tfds_eval(config)
    why = _streams(config, num_train, stream.example_bytes(train.element_spec), budget)
    source = tfds_data.source(config.dataset, config.train_split, config.data_dir) if why else None
    return info, train.element_spec, train, num_train, evaluation, source, why, None


def _user_examples(config, train_data, eval_data, model_given, num_classes, worker, budget):
    """The Python API's dataset, or function of the input context (always streamed, its shards read apart)."""
    if config.eval_dataset or config.validation_split or config.image_size:
        raise ConfigError('eval_dataset, validation_split and image_size go with a folder or .npz dataset; with '
                          'train_data, pass eval_data')
    function = train_data if callable(train_data) and not isinstance(train_data, tf.data.Dataset) else None
    given, why = train_data, 'a function of the input context is always streamed'
    if function and config.input == 'memory':
        function, given = None, function(tf.distribute.InputContext())  # its one dataset, held in memory
    elif function:
        # The first shard this worker reads: a worker may hold the files of its own shards only.
        shards = config.input_shards or worker[1]
        first = worker[0] * max(1, shards // worker[1])
        given = function(tf.distribute.InputContext(num_input_pipelines=shards, input_pipeline_id=first))
    spec = data.check_examples(given, 'train_data', streaming=function is not None or config.input != 'memory')
    size = int(given.cardinality())
    num_train = size if size >= 0 else None
    if not function:
        why = _streams(config, num_train, stream.example_bytes(spec), budget)
    source = _user_source(function, given, spec, size) if why else None
    info = spec if model_given else tfds_data.info_of(given, num_classes)
    evaluation = eval_data(tf.distribute.InputContext()) if callable(eval_data) and not isinstance(
        eval_data, tf.data.Dataset) else eval_data
    return info, spec, given, num_train, evaluation, source, why, None


def _default_budget_mb():
    """A quarter of the machine's memory."""
    return max(1, os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 4 >> 20)


def _streams(config, num_examples, example_bytes, budget):
    """Why these examples are streamed ('' if they are held in memory): --input, or auto and their size
    against the budget."""
    if config.input != 'auto':
        return '--input=stream' if config.input == 'stream' else ''
    if num_examples is None:
        return 'their number is not known before they are read'
    if example_bytes is None:  # strings (text): their size is known once read; held, as before streams existed
        return ''
    held = num_examples * example_bytes
    return f'{held / 2**20:.0f} MB, over the {budget >> 20} MB memory budget' if held > budget else ''


def _check_file_flags(config):
    if config.train_split != 'train' or config.eval_split not in ('test', ''):
        raise ConfigError(f'--train_split/--eval_split select tfds splits; for the files of --dataset='
                          f'{config.dataset} use --validation_split=FRACTION or --eval_dataset=PATH')


def _user_source(function, dataset, spec, size):
    if function is not None:
        def shard(index, count):
            return function(tf.distribute.InputContext(num_input_pipelines=count, input_pipeline_id=index))

        def sizes(count):
            known = [int(shard(k, count).cardinality()) for k in range(count)]
            return known if min(known) >= 0 else None
        infinite = size == tf.data.INFINITE_CARDINALITY
        return stream.Sequential(spec, shard, sizes, infinite, stream.example_bytes(spec),
                                 'train_data (a function of the input context: each shard reads its own part)')

    def shard(index, count):
        return dataset if count == 1 else dataset.shard(count, index)
    return stream.Sequential(
        spec, shard, lambda count: [len(range(k, size, count)) for k in range(count)] if size >= 0 else None,
        size == tf.data.INFINITE_CARDINALITY, stream.example_bytes(spec),
        'train_data (a dataset: with several shards, each reads it whole and keeps its part)')


def _lengths(config, source, num_train, worker):
    """(input shards, steps per epoch, examples or None, [examples per shard] of a sequential stream or None,
    what the input line adds): a stream's from its source, checked."""
    if source is None:
        if config.steps_per_epoch is not None:
            raise ConfigError(f'--steps_per_epoch applies to a stream of unknown size or an infinite one; these '
                              f'{num_train} examples make {num_train // max(1, config.batch_size)} steps per epoch')
        return 1, data.steps_per_epoch(num_train, config.batch_size), num_train, None, ''
    shards = config.input_shards or worker[1]
    if shards % worker[1]:
        raise ConfigError(f'--input_shards={shards} does not split over the {worker[1]} workers; use a '
                          f'multiple of {worker[1]}')
    if config.batch_size % shards:
        raise ConfigError(f'--batch_size={config.batch_size} does not split evenly over {shards} input shards '
                          '(--input_shards, default the number of workers)')
    return (shards, *_stream_epoch(config, source, shards))


def _stream_epoch(config, source, shards):
    """(steps per epoch, examples or None, [examples per shard] or None, what the input line adds) of a
    streamed source; an unknown size is counted (said) or given by --steps_per_epoch."""
    local = config.batch_size // shards
    if isinstance(source, stream.RandomAccess) or not source.infinite:
        sizes = [source.num_examples] if isinstance(source, stream.RandomAccess) else source.sizes(shards)
        if config.steps_per_epoch is not None and sizes is not None:
            raise ConfigError(f'--steps_per_epoch applies to a stream of unknown size or an infinite one; these '
                              f'{sum(sizes)} examples make their own epochs')
    if isinstance(source, stream.RandomAccess):
        return data.steps_per_epoch(source.num_examples, config.batch_size), source.num_examples, None, ''
    if source.infinite:
        if config.train_steps is None:
            raise ConfigError('the training stream is infinite; give --train_steps (and --steps_per_epoch for how '
                              'often to evaluate and checkpoint, default: once at the end)')
        return config.steps_per_epoch or config.train_steps, None, None, ''
    if config.steps_per_epoch is not None:
        return config.steps_per_epoch, None, None, ''
    notes = ''
    if sizes is None:
        began = time.perf_counter()
        sizes = stream.count(source, shards)
        notes = (f'; its size counted in one pass: {" + ".join(map(str, sizes))} examples '
                 f'({time.perf_counter() - began:.1f} s; --steps_per_epoch skips this)')
    steps = min(sizes) // local
    if steps == 0:
        raise ConfigError(f'--batch_size={config.batch_size} over {shards} input shard(s) needs {local} examples '
                          f'per shard per step; the smallest shard has {min(sizes)}')
    uneven = sum(sizes) - min(sizes) * shards
    if uneven:
        notes += (f'; input shards of unequal size ({" + ".join(map(str, sizes))}): each epoch reads {steps} steps x '
                  f'{local} examples of each, so {uneven} examples of the larger shards are not read per epoch')
    return steps, sum(sizes), sizes, notes


def _check_buffer(config, source, shards, worker, budget):
    """A sequential stream's shuffle buffers (one per shard a worker reads) must fit the memory budget."""
    owned = shards // worker[1]
    if (isinstance(source, stream.Sequential) and source.example_bytes
            and config.shuffle_buffer * source.example_bytes * owned > budget):
        raise ConfigError(f'--shuffle_buffer={config.shuffle_buffer} examples of {source.example_bytes} bytes '
                          f'(x {owned} shard(s)) take more than --memory_budget_mb={budget >> 20}; lower it')


def _input_line(asked, why, source, num_train, spec, budget, shards, owned):
    if source is None:
        size = stream.example_bytes(spec)
        held = f'{num_train * size / 2**20:.1f} MB' if size is not None else 'strings: their size known once read'
        return (f'input: in memory, {num_train} examples ({held}, memory budget {budget >> 20} MB, '
                f'--input={asked}); each step\'s batch gathered by index')
    reads = f'; {shards} input shards, this worker reads {owned[0]}..{owned[-1]}' if shards > 1 else ''
    return f'input: streamed from {source.describe} ({why}){reads}'


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
