"""Image-classification data: loading through tfds and batches indexed by the global step.

Training batch `step` holds positions [p * B, (p + 1) * B), p = step % steps_per_epoch, of
epoch `step // steps_per_epoch`'s permutation, computed per index with
`tf.random.experimental.index_shuffle` keyed by (seed, epoch). The data order is thus a pure
function of the step, like the learning rate, and resuming at any step costs nothing.
"""
import dataclasses

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from trainer import fashion_mnist

_SPLIT_FLAGS = '--train_split/--eval_split'
_SPLIT_FORMAT_URL = 'https://www.tensorflow.org/datasets/splits'


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset."""
    name: str
    image_shape: tuple[int, int, int]
    num_classes: int
    class_names: tuple[str, ...]


class DataError(ValueError):
    """Bad dataset, data dir or split, or data that cannot be had; the message is one line."""


def _one_line(error):
    return ' '.join(str(error.args[0] if error.args else type(error).__name__).split())


def _builder(dataset, data_dir):
    """The tfds builder of `dataset`, checked to be fixed-size image classification."""
    try:
        builder = tfds.builder(dataset, data_dir=data_dir)
    except tfds.core.DatasetNotFoundError:
        raise DataError(f'--dataset={dataset} is not a tensorflow-datasets name; use e.g. '
                        'fashion_mnist, mnist or cifar10 (all: tfds.list_builders())') from None
    features = builder.info.features
    names = features.keys() if isinstance(features, tfds.features.FeaturesDict) else ()
    if not ('image' in names and isinstance(features['image'], tfds.features.Image)
            and 'label' in names and isinstance(features['label'], tfds.features.ClassLabel)):
        raise DataError(f'--dataset={dataset} has no image and class-label features; use an '
                        'image-classification dataset such as fashion_mnist, mnist or cifar10')
    if None in features['image'].shape:
        raise DataError(f'--dataset={dataset} has images of varying size '
                        f'{features["image"].shape}; use a dataset with fixed-size images')
    return builder


def _source(dataset, data_dir):
    """(builder, whether to read Debian's Fashion-MNIST files); prepares the data if needed."""
    builder = _builder(dataset, data_dir)
    if builder.data_path.exists() and builder.is_prepared():
        return builder, False
    if builder.name == 'fashion_mnist' and fashion_mnist.available():
        return builder, True
    try:
        builder.download_and_prepare()
    except Exception as e:  # offline, unwritable dir, missing tfds extras: all end here
        hint = (f'install it with: {fashion_mnist.INSTALL}' if builder.name == 'fashion_mnist'
                else 'connect to the network or set --data_dir to where it is prepared')
        raise DataError(f'--dataset={dataset} is not prepared in --data_dir ({builder.data_path}) '
                        f'and preparing it failed ({type(e).__name__}: {_one_line(e)}); {hint}'
                        ) from None
    return builder, False


def _debian(call, *args):
    try:
        return call(*args)
    except ValueError as e:
        raise DataError(f'--dataset=fashion_mnist: {e}') from None


def _debian_slices(split):
    """[(split name, slice, split size)] that the tfds split string selects from Debian's files."""
    infos = {name: tfds.core.SplitInfo(name=name, shard_lengths=[n], num_bytes=0)
             for name, n in _debian(fashion_mnist.split_sizes).items()}
    try:
        instructions = tfds.core.ReadInstruction.from_spec(split).to_absolute(infos)
    except ValueError as e:
        raise _split_error('fashion_mnist', split, e) from None
    return [(i.splitname, slice(i.from_, i.to), infos[i.splitname].num_examples)
            for i in instructions]


def _split_error(dataset, split, error):
    message = _one_line(error)
    if _SPLIT_FORMAT_URL not in message:
        message += f' (format: {_SPLIT_FORMAT_URL})'
    return DataError(f'{_SPLIT_FLAGS}={split!r} for {dataset}: {message}')


def _tfds_split_size(builder, dataset, split):
    try:
        return builder.info.splits[split].num_examples
    except (KeyError, ValueError) as e:
        raise _split_error(dataset, split, e) from None


def info(dataset: str, data_dir: str | None = None) -> DatasetInfo:
    """Shapes and classes of a tfds dataset (class names may only be known once prepared)."""
    features = _source(dataset, data_dir)[0].info.features
    return DatasetInfo(name=dataset, image_shape=tuple(features['image'].shape),
                       num_classes=features['label'].num_classes,
                       class_names=tuple(features['label'].names))


def num_examples(dataset: str, split: str, data_dir: str | None = None) -> int:
    """Number of examples in a tfds split string such as 'train[:5%]'."""
    builder, from_debian = _source(dataset, data_dir)
    if from_debian:
        return sum(len(range(size)[part]) for _, part, size in _debian_slices(split))
    return _tfds_split_size(builder, dataset, split)


def load(dataset: str, split: str, data_dir: str | None = None) -> tf.data.Dataset:
    """Finite, unbatched (image uint8 [H, W, C], label int64) in the dataset's fixed order."""
    builder, from_debian = _source(dataset, data_dir)
    if from_debian:
        slices = _debian_slices(split)
        arrays = {name: _debian(fashion_mnist.read, name) for name, _, _ in slices}
        images, labels = (np.concatenate([arrays[name][k][part] for name, part, _ in slices])
                          for k in (0, 1))
        return tf.data.Dataset.from_tensor_slices((images, labels))
    _tfds_split_size(builder, dataset, split)  # validates the split string
    examples = builder.as_dataset(split=split, shuffle_files=False)
    return examples.map(lambda ex: (ex['image'], ex['label']), num_parallel_calls=tf.data.AUTOTUNE)


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    """Full batches per epoch; the remainder is dropped (it differs from epoch to epoch)."""
    if batch_size < 1:
        raise DataError(f'--batch_size={batch_size} must be a positive integer')
    if batch_size > num_examples:
        raise DataError(f'--batch_size={batch_size} is larger than the training split '
                        f'({num_examples} examples); lower it or widen --train_split')
    return num_examples // batch_size


AUGMENTATIONS = ('flip', 'cutout')


def _cutout(images, size, seed):
    """Zeros a size x size square in each image with probability 1/2 (DeVries & Taylor, 2017).

    The square's centre is uniform over the image, so near a border only part of it falls inside.
    """
    shape = tf.shape(images)
    draws = tf.random.stateless_uniform([3, shape[0]], seed=seed)  # centre row, centre column, whether
    top = tf.cast(draws[0] * tf.cast(shape[1], tf.float32), tf.int32) - size // 2
    left = tf.cast(draws[1] * tf.cast(shape[2], tf.float32), tf.int32) - size // 2
    rows = tf.range(shape[1])[None, :, None, None] - top[:, None, None, None]
    columns = tf.range(shape[2])[None, None, :, None] - left[:, None, None, None]
    inside = (rows >= 0) & (rows < size) & (columns >= 0) & (columns < size) & (draws[2] < 0.5)[:, None, None, None]
    return tf.where(inside, tf.zeros_like(images), images)


# tf.data pays per element (a function call, hand-offs between its threads): the dataset form makes batches a
# chunk of steps at a time, up to this many steps or _CHUNK_BYTES of images per chunk.
_CHUNK_STEPS = 32
_CHUNK_BYTES = 8 << 20
# tf.random.experimental.index_shuffle makes this row [_SEED_PREFIX, seed, epoch] of a [2] seed; the batches,
# which need one seed per index, build the same rows, so their order is index_shuffle's for (seed, epoch).
_SEED_PREFIX = 498247692


class TrainBatches:
    """The training batch of any step: images [B, H, W, C] as stored (0..255), labels int32 [B].

    All examples are held in host memory; batch `step` is gathered by index, so every step costs the
    same, resumes included. `batches(step)` computes it in graph (the trainer's loop: no iterator, no
    tf.data threads beside the step); `dataset(start_step)` streams the same batches through tf.data
    (Keras's fit, inspection). `augment` names transforms from AUGMENTATIONS, applied in AUGMENTATIONS'
    order: 'flip' mirrors left-right with probability 1/2; 'cutout' zeros a cutout_size-pixel square with
    probability 1/2. Their random draws are keyed by (seed, step), so augmented batches are a function of
    the step too.
    """

    def __init__(self, examples: tf.data.Dataset, num_examples: int, batch_size: int, seed: int,
                 augment: tuple[str, ...] = (), cutout_size: int = 8):
        self.steps_per_epoch = steps_per_epoch(num_examples, batch_size)
        self.batch_size = batch_size
        unknown = [name for name in augment if name not in AUGMENTATIONS]
        if unknown:
            raise ValueError(f'augment={unknown[0]!r} is not one of: {", ".join(AUGMENTATIONS)}')
        if examples.cardinality() == tf.data.INFINITE_CARDINALITY:
            raise ValueError('TrainBatches needs a finite dataset of examples')
        parts = list(examples.batch(num_examples))
        if len(parts) != 1 or int(tf.shape(parts[0][1])[0]) != num_examples:
            raise ValueError(f'num_examples={num_examples} does not match the dataset size')
        self._images, self._labels = parts[0]
        self._num_examples = num_examples
        self._augment = tuple(name for name in AUGMENTATIONS if name in augment)
        self._cutout_size = cutout_size
        self._seed = tf.constant(seed, tf.int64)

    def __call__(self, step):
        """The batch of `step` (a scalar integer), made on the host's CPU, where the examples are."""
        with tf.device('/cpu:0'):
            step = tf.cast(step, tf.int64)
            images, labels = self._gather(tf.reshape(step, [1]))
            return self._augmented(images[0], labels[0], step) if self._augment else (images[0], labels[0])

    def dataset(self, start_step: int = 0) -> tf.data.Dataset:
        """The batches of steps start_step, start_step + 1, ... as an infinite tf.data stream."""
        if start_step < 0:
            raise ValueError(f'start_step={start_step} must be >= 0')
        batch_bytes = self._images.dtype.size * self.batch_size * int(np.prod(self._images.shape[1:]))
        chunk = max(1, min(_CHUNK_STEPS, _CHUNK_BYTES // batch_bytes))

        def chunk_of_steps(first_step):
            step = first_step + tf.range(chunk, dtype=tf.int64)
            return (*self._gather(step), step) if self._augment else self._gather(step)

        stream = (tf.data.Dataset.counter(start_step - start_step % chunk, chunk)
                  .map(chunk_of_steps, num_parallel_calls=tf.data.AUTOTUNE)
                  .unbatch()
                  .skip(start_step % chunk))
        if self._augment:
            stream = stream.map(self._augmented, num_parallel_calls=tf.data.AUTOTUNE)
        return stream.prefetch(tf.data.AUTOTUNE)

    def _gather(self, step):
        """Batches of the steps `step` [K]: images [K, B, ...], labels [K, B].

        Batch s holds positions [p * B, (p + 1) * B), p = s % steps_per_epoch, of epoch s // steps_per_epoch's
        permutation, computed per index with index_shuffle keyed by (seed, epoch).
        """
        count, batch_size = tf.shape(step)[0], self.batch_size
        epoch, position = step // self.steps_per_epoch, step % self.steps_per_epoch
        positions = position[:, None] * batch_size + tf.range(batch_size, dtype=tf.int64)
        rows = tf.stack([tf.fill([count], tf.constant(_SEED_PREFIX, tf.int64)), tf.fill([count], self._seed),
                         epoch], 1)
        indices = tf.raw_ops.RandomIndexShuffle(index=tf.reshape(positions, [-1]),
                                                seed=tf.repeat(rows, batch_size, axis=0),
                                                max_index=tf.constant(self._num_examples - 1, tf.int64), rounds=4)
        indices = tf.reshape(indices, [count, batch_size])
        # Images stay as stored (uint8 for tfds images): the model's input layer casts them in the step.
        return tf.gather(self._images, indices), tf.cast(tf.gather(self._labels, indices), tf.int32)

    def _augmented(self, images, labels, step):
        step_seed = tf.stack([self._seed, step])
        if 'flip' in self._augment:
            images = tf.image.stateless_random_flip_left_right(images, step_seed)
        if 'cutout' in self._augment:
            images = _cutout(images, self._cutout_size, tf.random.experimental.stateless_fold_in(step_seed, 1))
        return images, labels


def eval_batches(examples: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
    """Every example once in order, cached in memory after the first pass; last batch may be partial."""
    return (examples.cache().batch(batch_size)
            .map(lambda images, labels: (images, tf.cast(labels, tf.int32)), num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))
