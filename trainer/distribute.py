"""The tf.distribute strategy of a run, the folder each worker writes to, and preemption in a cluster.

Everything holding variables is created under `strategy.scope()`, steps run through `strategy.run`, losses
are averaged over the global batch and metrics summed across replicas (trainer.loop), so one loop serves
every strategy here. Devices are configured when TensorFlow's runtime starts, so `create` must come before
anything else runs TensorFlow ops (trainer.api calls it before it reads the data).
"""
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile

import tensorflow as tf

from trainer.config import ConfigError

# What --strategy accepts.
NAMES = ('auto', 'one_device', 'mirrored', 'multi_worker', 'tpu')
# Exit status of a worker that saved a checkpoint on preemption: a cluster manager restarts such a worker.
RESTART_CODE = 42


def create(name='auto', num_gpus=None, cpu_devices=None):
    """The strategy `name` (one of NAMES); raises ConfigError.

    num_gpus: use the first N GPUs (None: all visible, 0: none). cpu_devices: split the CPU into N logical
    devices, so `mirrored` has N replicas on a machine without GPUs.
    auto: MirroredStrategy when more than one GPU is visible (or, without GPUs, --cpu_devices > 1), else
    TensorFlow's default strategy (one replica; it also accepts a model built outside any scope).
    multi_worker: MultiWorkerMirroredStrategy over the cluster in TF_CONFIG (one CPU or all GPUs per worker).
    tpu: TPUStrategy over the TPU TPUClusterResolver finds (untested here: no TPU).
    """
    if name not in NAMES:
        raise ConfigError(f'--strategy={name!r} is not one of: {", ".join(NAMES)}')
    if num_gpus is not None and (isinstance(num_gpus, bool) or not isinstance(num_gpus, int) or num_gpus < 0):
        raise ConfigError(f'--num_gpus={num_gpus!r} must be a whole number >= 0')
    if cpu_devices is not None and (isinstance(cpu_devices, bool) or not isinstance(cpu_devices, int)
                                    or cpu_devices < 1):
        raise ConfigError(f'--cpu_devices={cpu_devices!r} must be a whole number >= 1')
    if name in ('multi_worker', 'tpu') and cpu_devices not in (None, 1):
        raise ConfigError(f'--cpu_devices={cpu_devices} only applies to --strategy=mirrored or auto '
                          f'({name} uses one CPU device per worker)')
    gpus, cpus = _configure_devices(num_gpus, cpu_devices)
    if name == 'multi_worker':  # before anything starts the runtime: it configures collective ops at start-up
        return _multi_worker()
    if name == 'tpu':
        return _tpu()
    if name == 'auto':
        if len(gpus) < 2 and (gpus or cpus < 2):
            return tf.distribute.get_strategy()
        name = 'mirrored'
    devices = ([f'/gpu:{i}' for i in range(len(gpus))] or
               [f'/cpu:{i}' for i in range(cpus)])
    if name == 'one_device':
        return tf.distribute.OneDeviceStrategy(devices[0])
    return tf.distribute.MirroredStrategy(devices)


def check_batch(strategy, batch_size):
    """Raises ConfigError unless the global batch splits evenly over the strategy's replicas."""
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        lower, upper = batch_size // replicas * replicas, (batch_size // replicas + 1) * replicas
        raise ConfigError(f'--batch_size={batch_size} (the global batch) does not split evenly over {replicas} '
                          f'replicas; use a multiple of {replicas}, e.g. {f"{lower} or " if lower else ""}{upper}')


def describe(strategy, batch_size):
    """One line for the log: the strategy, this worker, the replicas and the per-replica batch."""
    replicas = strategy.num_replicas_in_sync
    resolver = cluster_resolver(strategy)
    where = ''
    if resolver:
        role = 'the chief' if is_chief(strategy) else 'not the chief, so its files go to a temporary folder'
        where = f' (this is {resolver.task_type} {resolver.task_id}: {role})'
    devices = ', '.join(strategy.extended.worker_devices)
    public = {'MultiWorkerMirroredStrategy': tf.distribute.MultiWorkerMirroredStrategy,  # a class named
              'MirroredStrategy': tf.distribute.MirroredStrategy,                        # otherwise
              'OneDeviceStrategy': tf.distribute.OneDeviceStrategy, 'TPUStrategy': tf.distribute.TPUStrategy}
    name = next((name for name, kind in public.items() if isinstance(strategy, kind)), type(strategy).__name__)
    return (f'{name}: {replicas} replica(s), per-replica batch {batch_size // replicas}; '
            f'devices here {devices}{where}')


def has_gpu():
    """Whether a GPU is visible (picks float16 over bfloat16 for mixed precision)."""
    return bool(tf.config.get_visible_devices('GPU'))


def is_chief(strategy):
    """Whether this process writes the run's files: always, except on the non-chief workers of a cluster."""
    return strategy.extended.should_checkpoint


def cluster_resolver(strategy):
    """The multi-worker cluster this process is part of, or None (one process)."""
    resolver = getattr(strategy, 'cluster_resolver', None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return None
    return resolver if resolver.cluster_spec().jobs else None


def input_pipeline(strategy):
    """(this worker's index, the number of workers): the chief first, then the workers, as replica ids go."""
    resolver = cluster_resolver(strategy)
    if resolver is None:
        return 0, 1
    spec = resolver.cluster_spec().as_dict()
    tasks = [(kind, index) for kind in ('chief', 'worker') for index in range(len(spec.get(kind, ())))]
    return tasks.index((resolver.task_type, resolver.task_id)), len(tasks)


@contextlib.contextmanager
def worker_dir(strategy, model_dir):
    """Yields the folder this process writes to: model_dir on the chief, else a temporary folder.

    Non-chief workers still save checkpoints, summaries and the export (saving variables of a
    MultiWorkerMirroredStrategy takes part in collective ops), but into a folder removed on exit.
    """
    resolver = cluster_resolver(strategy)
    folder = model_dir
    if not is_chief(strategy):
        task = f'{resolver.task_type}{resolver.task_id}' if resolver else 'worker'
        folder = tempfile.mkdtemp(prefix=f'stepwise-{task}-')
    try:
        yield folder
        if resolver:
            # A worker that exits tells the cluster so, which aborts collective ops still running elsewhere
            # (the chief's export, say): an all-reduce first makes every worker wait until all are done.
            tf.function(lambda: strategy.reduce(tf.distribute.ReduceOp.SUM,
                                                strategy.run(lambda: tf.constant(1.0)), axis=None))()
    finally:
        if folder != model_dir:
            shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def preemption(strategy, step, save, say):
    """Yields run(fn, *args): fn(*args), but in a cluster with TensorFlow's PreemptionCheckpointHandler.

    A SIGTERM to any worker makes every worker call `save()` (flush summaries, checkpoint) at the same
    loop call, then `say` a line and exit with RESTART_CODE; rerunning the cluster resumes from that
    checkpoint. `step` (the global step variable) is reported in the line. Outside a cluster, run is a
    plain call and SIGTERM keeps its usual meaning.
    """
    resolver = cluster_resolver(strategy)
    if resolver is None:
        yield lambda fn, *args: fn(*args)
        return

    def leave():
        say([f'preempted: every worker saved a checkpoint at step {int(step.numpy())}; restart the cluster '
             'with the same commands to continue'])
        sys.exit(RESTART_CODE)

    # The handler counts its calls from a variable it adds to the checkpoint it is given; a checkpoint of
    # its own (never saved: save_fn saves ours) keeps that counter out of the run's checkpoints and equal
    # to 0 on every worker at start, which its agreement on the call to save at relies on.
    previous = signal.getsignal(signal.SIGTERM)  # the handler installs its own
    try:
        with tempfile.TemporaryDirectory(prefix='stepwise-preemption-') as folder:
            handler = tf.distribute.experimental.PreemptionCheckpointHandler(
                resolver, tf.train.CheckpointManager(tf.train.Checkpoint(), folder, max_to_keep=1),
                termination_config=tf.distribute.experimental.TerminationConfig(
                    exit_fn=leave, save_fn=save, grace_period=0))
            yield handler.run
    finally:
        signal.signal(signal.SIGTERM, previous)


def _configure_devices(num_gpus, cpu_devices):
    """Makes the first num_gpus GPUs visible and splits the CPU (None: as they are).

    Returns the visible physical GPUs and the number of logical CPU devices.
    """
    gpus = tf.config.list_physical_devices('GPU')
    if num_gpus is not None and num_gpus > len(gpus):
        raise ConfigError(f'--num_gpus={num_gpus} but {len(gpus)} GPU(s) are visible')
    try:
        if num_gpus is not None and tf.config.get_visible_devices('GPU') != gpus[:num_gpus]:
            tf.config.set_visible_devices(gpus[:num_gpus], 'GPU')
        cpu = tf.config.list_physical_devices('CPU')[0]
        cpus = len(tf.config.get_logical_device_configuration(cpu) or [cpu])
        if cpu_devices is not None and cpu_devices != cpus:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices)
            cpus = cpu_devices
    except RuntimeError:
        raise ConfigError(f'--cpu_devices={cpu_devices} / --num_gpus={num_gpus}: TensorFlow has already started '
                          'in this process with other devices; set them before anything runs TensorFlow '
                          '(e.g. in a new process)') from None
    return gpus[:num_gpus], cpus


def _multi_worker():
    raw = os.environ.get('TF_CONFIG', '')
    if raw:
        _check_tf_config(raw)
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except (ValueError, RuntimeError) as e:
        raise ConfigError(f'--strategy=multi_worker: {" ".join(str(e).split())}') from None


def _check_tf_config(raw):
    """Raises ConfigError naming what is wrong with the TF_CONFIG environment variable."""
    example = ('e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}')
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise ConfigError(f'TF_CONFIG is not JSON ({e}); {example}') from None
    cluster = value.get('cluster') if isinstance(value, dict) else None
    task = value.get('task') if isinstance(value, dict) else None
    if not (isinstance(cluster, dict) and cluster and isinstance(task, dict)):
        raise ConfigError(f'TF_CONFIG needs "cluster" and "task"; {example}')
    kind, index = task.get('type'), task.get('index')
    addresses = cluster.get(kind)
    if not isinstance(addresses, list) or not isinstance(index, int) or not 0 <= index < len(addresses):
        raise ConfigError(f'TF_CONFIG task {kind!r} #{index!r} is not in its cluster '
                          f'({", ".join(f"{k}: {len(v)}" for k, v in cluster.items())}); {example}')


def _tpu():
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as e:
        raise ConfigError(f'--strategy=tpu: no TPU found ({" ".join(str(e).split())})') from None
    return tf.distribute.TPUStrategy(resolver)
