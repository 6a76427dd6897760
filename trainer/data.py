"""The examples of a run: checked up front, held in memory, batched as a function of the global step.

An example is `(features, labels)` or `(features, labels, sample_weights)`, each any nest (a tensor, tuple or
dict) of any dtype with a fixed shape; nothing here reads, casts or reorders a value. Training batch `step`
holds positions [p * B, (p + 1) * B), p = step % steps_per_epoch, of epoch `step // steps_per_epoch`'s
permutation, computed per index with `tf.random.experimental.index_shuffle` keyed by (seed, epoch). The data
order is thus a pure function of the step, like the learning rate, and resuming at any step costs nothing.
"""
import hashlib
import re

import keras
import numpy as np
import tensorflow as tf


class DataError(ValueError):
    """Bad dataset, data dir or split, or data that cannot be had; the message is one line."""


def one_line(error, limit=600):
    """An exception's message on one line, without terminal colour codes (Keras's), cut at `limit` characters."""
    text = _op_message(error) if isinstance(error, tf.errors.OpError) else \
        error.args[0] if error.args else type(error).__name__
    text = re.sub(r'\x1b\[[0-9;]*m', '', str(text))
    text = ' '.join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + '...'



def _op_message(error):
    """What a TensorFlow op error says, without the graph's traceback ('Detected at node ... File ...') and the
    node names around it."""
    lines = [line for line in error.message.splitlines() if line.strip() and not line.startswith((' ', '\t'))
             and not line.startswith(('Graph execution error', 'Detected at node'))]
    text = lines[-1] if lines else error.message
    return re.sub(r'\{\{function_node [^}]*\}\}\s*|\s*\[\[\{\{node [^]]*\]\]|\s*\[Op:[^]]*\]', '', text).strip()


# Dataset ops, by the type name tf.data gives them in a dataset's graph.
_BATCHING = {'BatchDataset', 'BatchDatasetV2', 'PaddedBatchDataset', 'PaddedBatchDatasetV2', 'ParallelBatchDataset',
             'MapAndBatchDataset', 'ExperimentalMapAndBatchDataset', 'DenseToSparseBatchDataset',
             'RebatchDataset', 'RebatchDatasetV2', 'ExperimentalDenseToSparseBatchDataset', 'WindowDataset'}
_UNBATCHING = {'UnbatchDataset', 'ExperimentalUnbatchDataset'}
_SHUFFLING = {'ShuffleDataset', 'ShuffleDatasetV2', 'ShuffleDatasetV3', 'ShuffleAndRepeatDataset',
              'ShuffleAndRepeatDatasetV2', 'GlobalShuffleDataset'}


def _pipeline_ops(dataset):
    """{node name: (op type, [input node names])} of the dataset's graph and its output node, or None if
    tf.data cannot serialize it (then the checks that read it are skipped)."""
    try:
        # tf.data has no public reader of a dataset's pipeline; its graph is what tf.data.experimental.service
        # and snapshots serialize.
        serialized = tf.raw_ops.DatasetToGraphV2(input_dataset=dataset._variant_tensor,  # noqa: SLF001
                                                 external_state_policy=1, strip_device_assignment=True)
    except (tf.errors.OpError, AttributeError, TypeError):
        return None
    graph = tf.compat.v1.GraphDef()
    graph.ParseFromString(serialized.numpy())
    nodes = {node.name: (node.op, [name.split(':')[0].lstrip('^') for name in node.input]) for node in graph.node}
    outputs = [inputs[0] for op, inputs in nodes.values() if op == '_Retval' and inputs]
    return (nodes, outputs[0]) if outputs else None


def _batched(nodes, name, seen):
    """Whether the dataset at node `name` yields batches: a batching op with no unbatch after it."""
    if name in seen or name not in nodes:
        return False
    seen.add(name)
    op, inputs = nodes[name]
    if op in _UNBATCHING:
        return False
    return op in _BATCHING or any(_batched(nodes, i, seen) for i in inputs)


def _describe(spec):
    return tf.nest.map_structure(lambda s: f'{s.dtype.name}{s.shape.as_list()}' if isinstance(s, tf.TensorSpec)
                                 else type(s).__name__, spec)


def check_examples(dataset, name, like=None, streaming=False):
    """Checks an unbatched dataset of examples; returns its element spec. Raises DataError (one line).

    name: how the user calls it ('train_data'); like: another dataset's element spec it must match in
    structure, dtypes and shapes (eval_data against train_data); streaming: it is read as a stream
    (trainer.stream), which may be infinite or of unknown size.
    """
    if not isinstance(dataset, tf.data.Dataset):
        raise DataError(f'{name} must be a tf.data.Dataset of (features, labels[, sample_weights]), got '
                        f'{type(dataset).__name__}')
    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) in (2, 3)):
        raise DataError(f'{name} must yield (features, labels) or (features, labels, sample_weights) tuples; '
                        f'its elements are {_describe(spec)}')
    cardinality = int(dataset.cardinality())
    if cardinality == tf.data.INFINITE_CARDINALITY and not streaming:
        raise DataError(f'{name} is infinite (a .repeat()?); pass the finite set of examples (the loop goes '
                        'through it epoch after epoch itself), or stream it with --input=stream and --train_steps')
    if cardinality == tf.data.UNKNOWN_CARDINALITY and not streaming:
        raise DataError(f'{name} has an unknown number of examples (after .filter() or from a generator?); '
                        'state it with dataset.apply(tf.data.experimental.assert_cardinality(N)), or stream '
                        'it with --input=stream')
    if cardinality == 0:
        raise DataError(f'{name} is empty')
    pipeline = _pipeline_ops(dataset)
    if pipeline is not None:
        shuffles = sorted({op for op, _ in pipeline[0].values() if op in _SHUFFLING})
        if shuffles:
            raise DataError(f'{name} shuffles ({shuffles[0]}); remove the .shuffle(): the loop orders the '
                            'examples itself, as a function of --seed and the step, so that resumes are exact')
    for path, leaf in _leaves(spec):
        if not isinstance(leaf, tf.TensorSpec):
            raise DataError(f'{name}{path} is a {type(leaf).__name__}; only dense tensors are supported '
                            '(e.g. .to_tensor() a ragged one, padded to a fixed length)')
        if not leaf.shape.is_fully_defined():
            # A batch of fixed size (drop_remainder) may be an example on purpose (a sequence cut from a
            # stream); one of varying size is the dataset batched by mistake.
            if leaf.shape.rank and leaf.shape[0] is None and pipeline and _batched(*pipeline, set()):
                raise DataError(f'{name} is batched; pass it unbatched (one example per element, e.g. '
                                f'dataset.unbatch()): the loop makes the batches of --batch_size itself')
            raise DataError(f'{name}{path} has shape {leaf.shape.as_list()}, not fixed; every example must have '
                            'the same shape (pad or resize them)')
    if like is not None:
        try:
            tf.nest.assert_same_structure(like, spec)
        except (ValueError, TypeError):
            raise DataError(f'{name} has elements {_describe(spec)}; expected the structure of train_data, '
                            f'{_describe(like)}') from None
        for (path, leaf), (_, expected) in zip(_leaves(spec), _leaves(like)):
            if leaf.dtype != expected.dtype or leaf.shape != expected.shape:
                raise DataError(f'{name}{path} is {_describe(leaf)}; train_data has {_describe(expected)}')
    return spec


def _leaves(spec):
    """[(path, leaf)] of an element spec, path as written in Python: "[0]['ids']"."""
    return [(''.join(f'[{key!r}]' for key in path), leaf) for path, leaf in keras.tree.flatten_with_path(spec)]


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    """Full batches per epoch; the remainder is dropped (it differs from epoch to epoch)."""
    if batch_size < 1:
        raise DataError(f'--batch_size={batch_size} must be a positive integer')
    if batch_size > num_examples:
        raise DataError(f'--batch_size={batch_size} is larger than the training split '
                        f'({num_examples} examples); lower it or train on more examples')
    return num_examples // batch_size


# tf.data pays per element (a function call, hand-offs between its threads): its pipelines of gathered batches
# make them a chunk of steps at a time, up to this many steps or _CHUNK_BYTES of examples per chunk.
_CHUNK_STEPS = 32
_CHUNK_BYTES = 8 << 20


def chunk_steps(example_bytes, batch_size):
    """How many steps' batches of `batch_size` examples of `example_bytes` (None: not known) one tf.data element
    holds."""
    if example_bytes is None:
        return 1
    return max(1, min(_CHUNK_STEPS, _CHUNK_BYTES // max(1, example_bytes * batch_size)))
# tf.random.experimental.index_shuffle makes this row [_SEED_PREFIX, seed, epoch] of a [2] seed; the batches,
# which need one seed per index, build the same rows, so their order is index_shuffle's for (seed, epoch).
_SEED_PREFIX = 498247692


def batch_indices(step, seed, steps_per_epoch, batch_size, num_examples, first=0, count=None):
    """The example indices [K, count] of positions first..first+count-1 of the batches of the steps `step` [K].

    Batch s holds positions [p * B, (p + 1) * B), p = s % steps_per_epoch, of epoch s // steps_per_epoch's
    permutation of 0..num_examples-1, computed per index with index_shuffle keyed by (seed, epoch).
    """
    count = batch_size if count is None else count
    size = tf.shape(step)[0]
    epoch, position = step // steps_per_epoch, step % steps_per_epoch
    positions = position[:, None] * batch_size + first + tf.range(count, dtype=tf.int64)
    rows = tf.stack([tf.fill([size], tf.constant(_SEED_PREFIX, tf.int64)),
                     tf.fill([size], tf.cast(seed, tf.int64)), epoch], 1)
    indices = tf.raw_ops.RandomIndexShuffle(index=tf.reshape(positions, [-1]), seed=tf.repeat(rows, count, axis=0),
                                            max_index=tf.constant(num_examples - 1, tf.int64), rounds=4)
    return tf.reshape(indices, [size, count])


class TrainBatches:
    """The training batch of any step: the examples' nest, each leaf [B, ...], values and dtypes as stored.

    All examples are held in host memory; batch `step` is gathered by index, so every step costs the
    same, resumes included. `batches(step)` computes it in graph (the trainer's loop: no iterator, no
    tf.data threads beside the step); `dataset(start_step)` streams the same batches through tf.data
    (Keras's fit, inspection). `transform(batch, seed)`, if given, maps each batch to another of the same
    structure, from a [2] int64 seed (seed, step): stateless random ops keyed by it keep augmented batches a
    function of the step too (trainer.augment).
    """
    per_worker = False  # every worker gathers the global batch (then each feeds its replicas their shares)

    def __init__(self, examples: tf.data.Dataset, num_examples: int, batch_size: int, seed: int, transform=None):
        self.steps_per_epoch = steps_per_epoch(num_examples, batch_size)
        self.batch_size = batch_size
        if examples.cardinality() == tf.data.INFINITE_CARDINALITY:
            raise ValueError('TrainBatches needs a finite dataset of examples')
        parts = list(examples.batch(num_examples))
        if len(parts) != 1 or int(tf.shape(tf.nest.flatten(parts[0])[0])[0]) != num_examples:
            raise ValueError(f'num_examples={num_examples} does not match the dataset size')
        self._examples = parts[0]
        self._num_examples = num_examples
        self._transform = transform
        self._seed = tf.constant(seed, tf.int64)

    def sha256(self):
        """A digest of every example held (values, dtypes, shapes, in the order they came)."""
        digest = hashlib.sha256()
        for leaf in tf.nest.flatten(self._examples):
            digest.update(f'{leaf.dtype.name}{leaf.shape.as_list()}'.encode())
            values = leaf.numpy()
            digest.update(b''.join(values.ravel()) if leaf.dtype == tf.string else values.tobytes())
        return digest.hexdigest()

    def start(self, step):
        """Nothing to position: any step's batch is gathered directly (trainer.stream's batches need it)."""

    def __call__(self, step):
        """The batch of `step` (a scalar integer), made on the host's CPU, where the examples are."""
        with tf.device('/cpu:0'):
            step = tf.cast(step, tf.int64)
            batch = tf.nest.map_structure(lambda t: t[0], self._gather(tf.reshape(step, [1])))
            return self._transformed(batch, step) if self._transform else batch

    def dataset(self, start_step: int = 0) -> tf.data.Dataset:
        """The batches of steps start_step, start_step + 1, ... as an infinite tf.data stream."""
        if start_step < 0:
            raise ValueError(f'start_step={start_step} must be >= 0')
        example_bytes = sum(t.dtype.size * int(np.prod(t.shape[1:])) for t in tf.nest.flatten(self._examples))
        chunk = chunk_steps(example_bytes, self.batch_size)

        def chunk_of_steps(first_step):
            step = first_step + tf.range(chunk, dtype=tf.int64)
            return (self._gather(step), step) if self._transform else self._gather(step)

        stream = (tf.data.Dataset.counter(start_step - start_step % chunk, chunk)
                  .map(chunk_of_steps, num_parallel_calls=tf.data.AUTOTUNE)
                  .unbatch()
                  .skip(start_step % chunk))
        if self._transform:
            stream = stream.map(self._transformed, num_parallel_calls=tf.data.AUTOTUNE)
        return stream.prefetch(tf.data.AUTOTUNE)

    def _gather(self, step):
        """Batches of the steps `step` [K]: the examples' nest, each leaf [K, B, ...]."""
        indices = batch_indices(step, self._seed, self.steps_per_epoch, self.batch_size, self._num_examples)
        return tf.nest.map_structure(lambda t: tf.gather(t, indices), self._examples)

    def _transformed(self, batch, step):
        return self._transform(batch, tf.stack([self._seed, step]))


def eval_batches(examples: tf.data.Dataset, batch_size: int, cache: bool = True) -> tf.data.Dataset:
    """Every example once in order (cached in memory after the first pass, if `cache`); the last batch may be
    partial."""
    return (examples.cache() if cache else examples).batch(batch_size).prefetch(tf.data.AUTOTUNE)
