"""Every flag of `python -m trainer.main`, and their conversion to a trainer.config.Config."""
import os

from absl import flags

import schedules
from schedules import flags as schedule_flags
from trainer import config as config_lib
from trainer import augment, distribute, models, nonfinite, optimizers

_EPOCH_HELP = {
    'warmup_epochs': 'warmup_steps in epochs',
    'cycle_epochs': 'cycle_steps in epochs (cosine_restarts, polynomial_restarts)',
    'decay_epochs': 'decay_steps in epochs',
    'stable_epochs': 'stable_steps in epochs (warmup_stable_decay)',
    'total_epochs': 'total_steps in epochs (cosine, one_cycle, power_decay)',
    'up_epochs': 'up_steps in epochs (cyclic)',
    'down_epochs': 'down_steps in epochs (cyclic)',
}


def define(flag_values=flags.FLAGS):
    """Defines the trainer's flags (and one per schedule parameter) on `flag_values`."""
    def string(name, default, help_text):
        flags.DEFINE_string(name, default, help_text, flag_values=flag_values)

    def integer(name, default, help_text):
        flags.DEFINE_integer(name, default, help_text, flag_values=flag_values)

    def boolean(name, default, help_text):
        flags.DEFINE_boolean(name, default, help_text, flag_values=flag_values)

    string('dataset', 'fashion_mnist', 'What to train on: a tensorflow-datasets image-classification name, a folder '
           'of images with one subfolder per class, or an .npz file of arrays x (images) and y (labels), '
           'FILE.npz:NAME,NAME to name them.')
    string('data_dir', None, 'tfds data directory (default: the tfds default, ~/tensorflow_datasets).')
    string('train_split', 'train', "tfds split string to train on, e.g. 'train[:90%]' (tfds names only).")
    string('eval_split', 'test', "tfds split string to evaluate on after each epoch ('' for none; tfds names only).")
    string('eval_dataset', None, 'A folder or .npz to evaluate on after each epoch (with a folder or .npz '
           '--dataset; default: none, or --validation_split).')
    flags.DEFINE_float('validation_split', None, 'The fraction of a folder or .npz --dataset held out for '
                       'evaluation (drawn with --seed).', flag_values=flag_values)
    flags.DEFINE_list('image_size', None, 'HEIGHT,WIDTH (or SIDE) to resize an image folder\'s images to '
                      '(default: their own size, which must then be the same for all).', flag_values=flag_values)
    flags.DEFINE_enum('input', 'auto', config_lib.INPUTS, 'memory: hold every training example in host memory and '
                      'gather each step\'s batch by index; stream: read them with a tf.data pipeline as the loop '
                      'runs, in bounded memory; auto: memory when the training examples fit --memory_budget_mb.',
                      flag_values=flag_values)
    integer('memory_budget_mb', None, 'Host memory the training examples may take in memory (default: a quarter '
            'of the machine\'s); it also bounds a stream\'s buffers.')
    integer('input_shards', None, 'Input shards of a stream (default: the number of workers); each worker reads '
            'its own; the data order depends on it, not on the number of workers.')
    integer('shuffle_buffer', 10000, 'Examples in the shuffle buffer of a stream read in order (tfds files, '
            'a Python dataset); folders and arrays are shuffled exactly by index. 0: none.')
    integer('steps_per_epoch', None, 'Steps per epoch of a stream whose size is not known (default: one pass '
            'counts it) or infinite (default: --train_steps).')
    flags.DEFINE_enum('model', 'cnn', models.names(), 'Model architecture.', flag_values=flag_values)
    flags.DEFINE_enum('optimizer', 'adam', optimizers.names(), 'Optimizer.', flag_values=flag_values)
    flags.DEFINE_float('momentum', 0.9, 'Momentum of sgd and rmsprop.', flag_values=flag_values)
    flags.DEFINE_float('weight_decay', None, 'Decoupled weight decay (default: adamw 0.004, others none).',
                       flag_values=flag_values)
    flags.DEFINE_float('ema_momentum', None, 'Keep an exponential moving average of the weights with this momentum '
                       '(e.g. 0.999) and evaluate and export it instead of the last weights (default: off).',
                       flag_values=flag_values)
    flags.DEFINE_enum('schedule', 'cosine_restarts', schedules.names(), 'Learning-rate schedule.',
                      flag_values=flag_values)
    schedule_flags.define(flag_values)
    for name, help_text in _EPOCH_HELP.items():
        flags.DEFINE_float(name, None, f'{help_text}, converted with the steps per epoch (rounded); '
                           'give it in steps or in epochs, not both.', flag_values=flag_values)
    flags.DEFINE_list('boundary_epochs', None, 'piecewise_constant: boundaries in epochs.',
                      flag_values=flag_values)
    integer('batch_size', 32, 'Global batch size.')
    flags.DEFINE_list('augment', [], 'Training-image transforms, comma-separated, from: '
                      f'{", ".join(augment.NAMES)}. flip: mirror left-right with probability 1/2; cutout: '
                      'zero a --cutout_size square with probability 1/2. Drawn from the seed and the step.',
                      flag_values=flag_values)
    integer('cutout_size', 8, 'Side in pixels of the square --augment=cutout zeros.')
    flags.DEFINE_float('epochs', None, f'Epochs to train (default {config_lib.DEFAULT_EPOCHS} unless '
                       '--train_steps is given).', flag_values=flag_values)
    integer('train_steps', None, 'Steps to train, instead of --epochs.')
    integer('steps_per_loop', 200, 'Steps per call of the compiled loop (progress is reported between '
            'calls; epoch ends and checkpoints always end a call).')
    integer('checkpoint_steps', 1000, 'Save a checkpoint every this many steps (0: only at epoch ends and '
            'the end).')
    integer('keep_checkpoints', 3, 'Checkpoints to keep.')
    string('model_dir', None, 'Folder of the run: checkpoints, TensorBoard logs, export '
           '(default runs/<dataset>-<model>-<schedule>). Rerunning on it resumes.')
    integer('seed', 0, 'Seed of the weights and of the data order.')
    boolean('deterministic', False, 'Deterministic ops (tf.config.experimental.enable_op_determinism).')
    boolean('mixed_precision', False, 'Mixed precision: float16 with loss scaling on GPU, bfloat16 on CPU.')
    boolean('jit_compile', False, 'XLA-compile the training step.')
    flags.DEFINE_enum('on_nonfinite', 'stop', nonfinite.MODES, 'Nothing non-finite is ever saved. stop: end '
                      'the run at a step with a non-finite loss, or at the end of the loop call that made the '
                      'weights non-finite; skip: do not apply steps with a non-finite loss or gradient, and go '
                      'on.', flag_values=flag_values)
    flags.DEFINE_enum('strategy', 'auto', distribute.NAMES, 'tf.distribute strategy: auto (mirrored with '
                      'several GPUs or --cpu_devices, else one device), one_device, mirrored (the GPUs or '
                      'CPU devices of this machine), multi_worker (the cluster in TF_CONFIG), tpu.',
                      flag_values=flag_values)
    integer('num_gpus', None, 'Use the first N GPUs (default: all visible; 0: CPU only).')
    integer('cpu_devices', None, 'Split the CPU into N logical devices (N replicas for --strategy=mirrored '
            'without GPUs).')


def to_config(flag_values=flags.FLAGS):
    """The Config the parsed flags describe; raises ConfigError."""
    f = flag_values
    try:
        params = schedule_flags.given(f)
    except schedules.ParameterError as e:
        raise config_lib.ConfigError(f'--{e.parameter}: {e}') from None
    for name in _EPOCH_HELP:
        if f[name].value is not None:
            params[name] = f[name].value
    if f.boundary_epochs is not None:
        try:
            params['boundary_epochs'] = [float(v) for v in f.boundary_epochs]
        except ValueError:
            raise config_lib.ConfigError(f'--boundary_epochs={",".join(f.boundary_epochs)} must be a '
                                         'comma-separated list of numbers') from None
    image_size = None
    if f.image_size is not None:
        try:
            image_size = [int(v) for v in f.image_size]
        except ValueError:
            raise config_lib.ConfigError(f'--image_size={",".join(f.image_size)} must be HEIGHT,WIDTH or SIDE, '
                                         'whole numbers >= 1') from None
        image_size = image_size * 2 if len(image_size) == 1 else image_size
    name = os.path.basename(os.path.normpath(f.dataset.split(':')[0])).removesuffix('.npz')
    model_dir = f.model_dir or os.path.join('runs', f'{name}-{f.model}-{f.schedule}')
    return config_lib.Config(
        model_dir=model_dir, dataset=f.dataset, data_dir=f.data_dir, train_split=f.train_split,
        eval_split=f.eval_split, eval_dataset=f.eval_dataset, validation_split=f.validation_split,
        image_size=image_size, input=f.input, memory_budget_mb=f.memory_budget_mb, input_shards=f.input_shards,
        shuffle_buffer=f.shuffle_buffer, steps_per_epoch=f.steps_per_epoch, model=f.model, optimizer=f.optimizer, momentum=f.momentum,
        weight_decay=f.weight_decay, ema_momentum=f.ema_momentum, schedule=f.schedule, schedule_params=params,
        batch_size=f.batch_size, augment=tuple(f.augment), cutout_size=f.cutout_size,
        epochs=f.epochs, train_steps=f.train_steps, steps_per_loop=f.steps_per_loop,
        checkpoint_steps=f.checkpoint_steps, keep_checkpoints=f.keep_checkpoints, seed=f.seed,
        deterministic=f.deterministic, mixed_precision=f.mixed_precision, jit_compile=f.jit_compile,
        on_nonfinite=f.on_nonfinite,
        strategy=f.strategy, num_gpus=f.num_gpus, cpu_devices=f.cpu_devices)
