"""The run's settings as one frozen dataclass, checked on construction.

Built from flags by trainer.flags or from keyword arguments by trainer.train; everything downstream reads
only this. Errors are ConfigError with a one-line message naming the flag (`--name`) and the allowed values.
"""
import dataclasses
import math

from trainer import augment as augment_lib
from trainer import nonfinite, optimizers

# Schedule lengths that may be given in epochs, as {epoch parameter: step parameter}.
EPOCH_PARAMETERS = {
    'warmup_epochs': 'warmup_steps',
    'cycle_epochs': 'cycle_steps',
    'decay_epochs': 'decay_steps',
    'stable_epochs': 'stable_steps',
    'total_epochs': 'total_steps',
    'up_epochs': 'up_steps',
    'down_epochs': 'down_steps',
    'boundary_epochs': 'boundaries',
}
DEFAULT_EPOCHS = 15

# Settings that may change between a run and its resumption: they do not change what is computed.
RESUMABLE_CHANGES = ('model_dir', 'data_dir', 'input', 'memory_budget_mb', 'steps_per_loop', 'checkpoint_steps', 'keep_checkpoints',
                     'jit_compile', 'strategy', 'num_gpus', 'cpu_devices',
                     'on_nonfinite')  # a run stopped at a non-finite step may go on with skip


# Where the training examples are read from (trainer.experiment resolves auto).
INPUTS = ('auto', 'memory', 'stream')


class ConfigError(ValueError):
    """A setting outside its allowed values; the message is one line naming the flag."""


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that defines a run.

    `model`, `dataset`, `schedule` and `optimizer` are registry names (or, from the Python API, descriptions of
    the objects passed); trainer.experiment checks them. `schedule_params` maps the schedule parameters (and
    their *_epochs variants) that were set to their values; unset ones are derived from the run's length. For
    a schedule, optimizer, loss or metrics object from the Python API, `schedule_params`, `optimizer_params`,
    `loss` and `metrics` hold what identifies it (its config; a schedule's rates at probe steps), so that a
    resume compares what they compute.
    """
    model_dir: str
    dataset: str = 'fashion_mnist'
    data_dir: str | None = None
    train_split: str = 'train'
    eval_split: str = 'test'
    eval_dataset: str | None = None  # a second folder or .npz to evaluate on (file datasets)
    validation_split: float | None = None  # the fraction of a file dataset held out for evaluation
    image_size: tuple[int, int] | None = None  # an image folder's images resized to (height, width)
    input: str = 'auto'  # INPUTS
    memory_budget_mb: int | None = None  # None: a quarter of the machine's memory
    # What the data order depends on, recorded by trainer.experiment: 'index' (by (seed, step), in memory or
    # streamed by index) or 'sequential' (a stream read in order), and the input shards where they matter.
    input_order: str = 'index'
    input_shards: int | None = None  # None: the number of workers
    shuffle_buffer: int = 10000  # a Sequential stream's (trainer.stream)
    steps_per_epoch: int | None = None  # a stream whose size is not known, or infinite
    stream_sizes: tuple[int, ...] | None = None  # a sequential stream's examples per input shard (recorded)
    model: str = 'cnn'
    optimizer: str = 'adam'
    optimizer_params: tuple[tuple[str, object], ...] = ()  # an optimizer instance's config (Python API)
    loss: object = None  # the user's loss and metrics, described (Python API); None: the built-in task's
    metrics: object = None
    train_data_sha256: str | None = None  # the user's examples (Python API) or files; None: a tfds split
    class_names: tuple[str, ...] | None = None  # an image folder's classes
    found_initial_lr: float | None = None  # what the range test found for --initial_lr=auto
    momentum: float = 0.9
    weight_decay: float | None = None
    ema_momentum: float | None = None  # evaluate and export a moving average of the weights
    schedule: str = 'cosine_restarts'
    schedule_params: tuple[tuple[str, object], ...] = ()
    batch_size: int = 32
    augment: tuple[str, ...] = ()  # names from trainer.augment.NAMES
    cutout_size: int = 8
    epochs: float | None = None  # DEFAULT_EPOCHS when neither epochs nor train_steps is given
    train_steps: int | None = None
    steps_per_loop: int = 200
    checkpoint_steps: int = 1000
    keep_checkpoints: int = 3
    seed: int = 0
    deterministic: bool = False
    mixed_precision: bool = False
    jit_compile: bool = False
    on_nonfinite: str = 'stop'  # trainer.nonfinite.MODES
    strategy: str = 'auto'  # trainer.distribute.NAMES; it and the two below are checked by distribute.create
    num_gpus: int | None = None
    cpu_devices: int | None = None

    def __post_init__(self):
        params = dict(self.schedule_params)
        object.__setattr__(self, 'schedule_params', tuple(sorted(
            (k, tuple(v) if isinstance(v, list) else v) for k, v in params.items())))
        augment = self.augment.split(',') if isinstance(self.augment, str) else self.augment
        if not isinstance(augment, (list, tuple)):
            raise ConfigError(f'--augment={self.augment!r} must be a list of names from: '
                              f'{", ".join(augment_lib.NAMES)}')
        for name in augment:
            if name and name not in augment_lib.NAMES:
                raise ConfigError(f'--augment={name!r} is not one of: {", ".join(augment_lib.NAMES)}')
        # The order they are applied in, whatever order they were given in: one spelling per run in config.json.
        object.__setattr__(self, 'augment', tuple(name for name in augment_lib.NAMES if name in augment))
        _positive_int('batch_size', self.batch_size)
        _positive_int('cutout_size', self.cutout_size)
        _positive_int('steps_per_loop', self.steps_per_loop)
        _positive_int('keep_checkpoints', self.keep_checkpoints)
        if not _is_int(self.checkpoint_steps) or self.checkpoint_steps < 0:
            raise ConfigError(f'--checkpoint_steps={self.checkpoint_steps!r} must be a whole number >= 0 '
                              '(0: only at epoch ends and at the end)')
        if not _is_int(self.seed) or self.seed < 0:
            raise ConfigError(f'--seed={self.seed!r} must be a whole number >= 0')
        if self.epochs is not None and self.train_steps is not None:
            raise ConfigError('--epochs and --train_steps were both given; give one of them')
        if self.epochs is None and self.train_steps is None:
            object.__setattr__(self, 'epochs', DEFAULT_EPOCHS)
        if self.epochs is not None and not (_is_number(self.epochs) and self.epochs > 0):
            raise ConfigError(f'--epochs={self.epochs!r} must be a finite number > 0')
        if self.train_steps is not None:
            _positive_int('train_steps', self.train_steps)
        object.__setattr__(self, 'optimizer_params', tuple(sorted(dict(self.optimizer_params).items())))
        if not self.optimizer_params and self.optimizer not in optimizers.names():
            raise ConfigError(f'--optimizer={self.optimizer!r} is not one of: {", ".join(optimizers.names())}')
        if not (_is_number(self.momentum) and 0 <= self.momentum < 1):
            raise ConfigError(f'--momentum={self.momentum!r} must be a number in [0, 1)')
        if self.weight_decay is not None and not (_is_number(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f'--weight_decay={self.weight_decay!r} must be a finite number >= 0')
        if self.ema_momentum is not None and not (_is_number(self.ema_momentum) and 0 < self.ema_momentum < 1):
            raise ConfigError(f'--ema_momentum={self.ema_momentum!r} must be a number in (0, 1)')
        if self.on_nonfinite not in nonfinite.MODES:
            raise ConfigError(f'--on_nonfinite={self.on_nonfinite!r} is not one of: {", ".join(nonfinite.MODES)}')
        if self.input not in INPUTS:
            raise ConfigError(f'--input={self.input!r} is not one of: {", ".join(INPUTS)}')
        for name in ('memory_budget_mb', 'input_shards', 'steps_per_epoch'):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        if not _is_int(self.shuffle_buffer) or self.shuffle_buffer < 0:
            raise ConfigError(f'--shuffle_buffer={self.shuffle_buffer!r} must be a whole number >= 0 (0: none)')
        if self.validation_split is not None and not (_is_number(self.validation_split)
                                                      and 0 < self.validation_split < 1):
            raise ConfigError(f'--validation_split={self.validation_split!r} must be a fraction in (0, 1)')
        if self.validation_split is not None and self.eval_dataset:
            raise ConfigError('--validation_split and --eval_dataset were both given; give one of them')
        if self.image_size is not None:
            size = tuple(self.image_size) if isinstance(self.image_size, (list, tuple)) else (self.image_size,) * 2
            if len(size) != 2 or not all(_is_int(v) and v > 0 for v in size):
                raise ConfigError(f'--image_size={self.image_size!r} must be HEIGHT,WIDTH or SIDE, whole numbers >= 1')
            object.__setattr__(self, 'image_size', size)
        if not self.train_split:
            raise ConfigError("--train_split='' must name a split, e.g. train or 'train[:90%]'")
        for epochs_name, steps_name in EPOCH_PARAMETERS.items():
            if epochs_name in params and steps_name in params:
                raise ConfigError(f'--{epochs_name} and --{steps_name} were both given; give one of them')

    def as_dict(self):
        """Plain JSON-able settings (schedule parameters inlined as `schedule.<name>`)."""
        values = dataclasses.asdict(self)
        values['augment'] = list(self.augment)
        for name in ('image_size', 'class_names', 'stream_sizes'):
            if values[name] is not None:
                values[name] = list(values[name])
        params = values.pop('schedule_params')
        values.update({f'schedule.{k}': list(v) if isinstance(v, tuple) else v for k, v in params})
        values.update({f'optimizer.{k}': v for k, v in values.pop('optimizer_params')})
        return values


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


def _positive_int(name, value):
    if not _is_int(value) or value < 1:
        raise ConfigError(f'--{name}={value!r} must be a whole number >= 1')
