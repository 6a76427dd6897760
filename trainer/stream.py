"""The streamed input path: training batches read by a tf.data pipeline as the loop runs, in bounded memory.

The data position is a function of the global step here too: a resume (even after kill -9) rebuilds the
pipeline at its step and reads the batches a run that was never stopped reads. The examples are cut into
`shards` input shards; each worker of a cluster reads only the shards it owns (a contiguous range), and the
global batch of a step is the concatenation of every shard's local batch of b = batch_size / shards
examples, in shard order, whatever the number of workers. Two kinds of source:

- `RandomAccess`: examples by index (a folder's files, arrays). Shard k's local batch of step s holds
  positions [p*B + k*b, p*B + (k+1)*b), p = s % steps_per_epoch, of the permutation index_shuffle gives for
  (seed, epoch): the in-memory path's batches exactly (trainer.data.batch_indices), for any number of
  shards. A resume reads nothing it does not train on.
- `Sequential`: a dataset per shard (the user's tf.data pipeline, over files). Each epoch reads the shard from
  its start through a shuffle buffer seeded by (seed, epoch, shard); a resume within an epoch reads the shard
  from the epoch's start and drops the examples before its step (said in the log). An infinite stream is read
  once from its start; its epochs are `steps_per_epoch` steps of it (for evaluation and checkpoints).

Augmentation is applied to each shard's local batch, keyed by (seed * shards + shard, step): with one shard,
the in-memory path's key.
"""
import dataclasses

import numpy as np
import tensorflow as tf

from trainer import data


@dataclasses.dataclass(frozen=True)
class RandomAccess:
    """Examples 0..num_examples-1 read by index.

    read: a tf.data map function, indices [n] int64 -> the examples' nest with leaves [n, ...] (arrays: a
    gather), or with `per_example`, one int64 index -> one example (a file's decode: run in parallel, in
    order). example_bytes: one example's size in memory, or None (strings); describe: how the log names it.
    """
    num_examples: int
    element_spec: tuple
    read: object
    example_bytes: int | None
    describe: str
    per_example: bool = False

    def examples(self):
        """Every example once, in index order (what the in-memory path holds; evaluation streams it)."""
        if self.per_example:
            return tf.data.Dataset.range(self.num_examples).map(self.read, num_parallel_calls=tf.data.AUTOTUNE)
        return (tf.data.Dataset.range(self.num_examples).batch(1024)
                .map(self.read, num_parallel_calls=tf.data.AUTOTUNE).unbatch())


@dataclasses.dataclass(frozen=True)
class Sequential:
    """A dataset per input shard: shard(index, count) -> an unbatched, deterministic tf.data.Dataset.

    sizes(count): [examples in each shard], or None when only reading them tells; infinite: the shards never
    end; example_bytes: one example's size in memory, or None (strings); describe: how the log names it.
    """
    element_spec: tuple
    shard: object
    sizes: object
    infinite: bool
    example_bytes: int | None
    describe: str


def arrays(x, y, describe):
    """A RandomAccess source of (features, labels) arrays held in memory: a batch is a gather."""
    features, labels = tf.constant(x), tf.constant(y)
    spec = (tf.TensorSpec(x.shape[1:], features.dtype), tf.TensorSpec(y.shape[1:], labels.dtype))
    return RandomAccess(len(x), spec, lambda i: (tf.gather(features, i), tf.gather(labels, i)), example_bytes(spec),
                        describe)


def count(source, shards):
    """[examples in each shard], by reading them once (a stream of unknown size)."""
    return [int(source.shard(k, shards).reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))
            for k in range(shards)]


def owned_shards(shards, worker, workers):
    """The contiguous range of input shards that worker `worker` of `workers` reads."""
    per_worker = shards // workers
    return range(worker * per_worker, (worker + 1) * per_worker)


def example_bytes(spec):
    """Bytes of one example of an element spec in memory, or None (a string's size is known once read)."""
    leaves = tf.nest.flatten(spec)
    if any(leaf.dtype == tf.string for leaf in leaves):
        return None
    return int(sum(leaf.dtype.size * int(np.prod(leaf.shape)) for leaf in leaves))


class StreamBatches:
    """The batches of a run from a RandomAccess or Sequential source, as the loop reads them.

    `start(step)` makes the iterator, positioned at `step`; calling it with a step (in the loop's graph) returns
    the next batch, checked to be that step's. A batch holds the shards this worker owns: [B * owned / shards].
    """
    per_worker = True

    def __init__(self, source, batch_size, seed, steps_per_epoch, shards=1, owned=None, shuffle_buffer=0,
                 transform=None, ram_budget=None):
        if batch_size % shards:
            raise data.DataError(f'--batch_size={batch_size} does not split evenly over --input_shards={shards}')
        self.source = source
        self.batch_size = batch_size
        self.steps_per_epoch = steps_per_epoch
        self.shards = shards
        self.owned = tuple(range(shards) if owned is None else owned)
        self._local = batch_size // shards
        self._seed = seed
        self._shuffle_buffer = shuffle_buffer
        self._transform = transform
        self._ram_budget = ram_budget
        self._iterator = None

    def start(self, step):
        with tf.device('/cpu:0'):
            self._iterator = iter(self.dataset(step))

    def __call__(self, step):
        with tf.device('/cpu:0'):
            read_step, batch = self._iterator.get_next()
            same = tf.debugging.assert_equal(read_step, tf.cast(step, tf.int64),
                                             message='the input stream is not at the loop\'s step')
            with tf.control_dependencies([same]):
                return tf.nest.map_structure(tf.identity, batch)

    def dataset(self, start_step=0):
        """(step, batch) for the steps start_step, start_step + 1, ..., of the shards this worker owns."""
        streams = [self._shard_batches(k, start_step) for k in self.owned]
        stream = streams[0] if len(streams) == 1 else tf.data.Dataset.zip(tuple(streams)).map(
            lambda *parts: (parts[0][0], tf.nest.map_structure(lambda *t: tf.concat(t, 0),
                                                               *[part[1] for part in parts])))
        options = tf.data.Options()
        options.deterministic = True
        if self._ram_budget:
            options.autotune.ram_budget = int(self._ram_budget)
        return stream.prefetch(tf.data.AUTOTUNE).with_options(options)

    def skipped_examples(self, step):
        """How many examples a start at `step` reads and drops (a Sequential source, within an epoch)."""
        if isinstance(self.source, RandomAccess):
            return 0
        position = step if self.source.infinite else step % self.steps_per_epoch
        return position * self._local * len(self.owned)

    def _shard_batches(self, shard, start_step):
        local = self._local
        if isinstance(self.source, RandomAccess) and not self.source.per_example:
            return self._transformed(self._gathered(shard, start_step), shard)
        if isinstance(self.source, RandomAccess):
            batches = (tf.data.Dataset.counter(start_step * local)
                       .map(lambda j: self._indices(tf.reshape(j // local, [1]), shard, j % local, 1)[0, 0])
                       .map(self.source.read, num_parallel_calls=tf.data.AUTOTUNE)
                       .batch(local, drop_remainder=True))
        else:
            batches = self._sequential(shard, start_step).batch(local, drop_remainder=True)
        return self._transformed(tf.data.Dataset.zip((tf.data.Dataset.counter(start_step), batches)), shard)

    def _gathered(self, shard, start_step):
        """(step, batch) of an indexed source whose read is a gather: a chunk of steps per read, as the in-memory
        path's dataset does (one tf.data element per step costs a few % of a small model's step)."""
        local, chunk = self._local, data.chunk_steps(self.source.example_bytes, self._local)

        def chunk_of_steps(first_step):
            steps = first_step + tf.range(chunk, dtype=tf.int64)
            batch = self.source.read(tf.reshape(self._indices(steps, shard), [-1]))
            return steps, tf.nest.map_structure(lambda t: tf.reshape(t, [chunk, local] + t.shape[1:].as_list()),
                                                batch)
        return (tf.data.Dataset.counter(start_step - start_step % chunk, chunk)
                .map(chunk_of_steps, num_parallel_calls=tf.data.AUTOTUNE)
                .unbatch()
                .skip(start_step % chunk))

    def _transformed(self, batches, shard):
        if not self._transform:
            return batches
        seed = tf.constant(self._seed * self.shards + shard, tf.int64)
        return batches.map(lambda step, batch: (step, self._transform(batch, tf.stack([seed, step]))),
                           num_parallel_calls=tf.data.AUTOTUNE)

    def _indices(self, steps, shard, first=0, count=None):
        """Positions first..first+count-1 (default all) of shard `shard`'s local batches of the steps [K]: the
        example indices [K, count]."""
        return data.batch_indices(steps, self._seed, self.steps_per_epoch, self.batch_size, self.source.num_examples,
                                  first=shard * self._local + first, count=count or self._local)

    def _sequential(self, shard, start_step):
        examples = self.source.shard(shard, self.shards)
        if self.source.infinite:
            return tf.data.Dataset.range(1).flat_map(
                lambda epoch: self._shuffled(examples, epoch, shard).skip(start_step * self._local))
        per_epoch = self.steps_per_epoch * self._local
        first_epoch = start_step // self.steps_per_epoch
        skip = (start_step % self.steps_per_epoch) * self._local

        def epoch_examples(epoch):
            dropped = tf.where(epoch == first_epoch, tf.constant(skip, tf.int64), 0)
            # A shard shorter than the epoch fails when read, instead of moving later examples into it.
            return (self._shuffled(examples, epoch, shard).take(per_epoch)
                    .apply(tf.data.experimental.assert_cardinality(per_epoch)).skip(dropped))
        return tf.data.Dataset.counter(first_epoch).flat_map(epoch_examples)

    def _shuffled(self, examples, epoch, shard):
        """The examples through a buffer seeded by a hash of (seed, epoch, shard), in a dataset function."""
        if not self._shuffle_buffer:
            return examples
        key = tf.stack([tf.constant(self._seed, tf.int64), tf.cast(epoch, tf.int64) * self.shards + shard])
        seed = tf.random.stateless_uniform([], seed=key, minval=1, maxval=2**31 - 1, dtype=tf.int64)
        # Dataset.shuffle pairs its seed with the graph's (the global seed, set by --seed): fixed here, the order
        # depends on the hash alone (and a global seed of 0 would make tf compare the seed tensor in Python).
        tf.compat.v1.get_default_graph().seed = 1
        return examples.shuffle(self._shuffle_buffer, seed=seed, reshuffle_each_iteration=False)
