"""The built-in image-classification task's source: tfds datasets with fixed-size `image` and `label` features.

A prepared copy in `data_dir` first; for `fashion_mnist`, Debian's files (read in place, nothing written);
otherwise tfds's `download_and_prepare`. Split strings are tfds's own (`ReadInstruction`). Examples come out
unbatched as (image uint8 [H, W, C], label int64) in the dataset's fixed order.
"""
import dataclasses
import os
import shutil
import socket
import urllib.parse

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from trainer import fashion_mnist, stream
from trainer.data import DataError, one_line as _one_line

_SPLIT_FLAGS = '--train_split/--eval_split'
_SPLIT_FORMAT_URL = 'https://www.tensorflow.org/datasets/splits'
# Seconds to wait for a download host before calling the network unreachable (tfds itself retries for minutes).
_CONNECT_SECONDS = 3


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset."""
    name: str
    image_shape: tuple[int, int, int]
    num_classes: int
    class_names: tuple[str, ...]


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
    hint = (f'install it with: {fashion_mnist.INSTALL}' if builder.name == 'fashion_mnist'
            else 'connect to the network or set --data_dir to where it is prepared')
    where = f'--dataset={dataset} is not prepared in --data_dir ({builder.data_path})'
    unreachable = _unreachable(builder)
    if unreachable:
        raise DataError(f'{where} and its download host {unreachable} cannot be reached; {hint}')
    created = _new_folders(builder)
    try:
        builder.download_and_prepare()
    except Exception as e:  # offline, unwritable dir, missing tfds extras: all end here
        for folder in created:
            shutil.rmtree(folder, ignore_errors=True)
        raise DataError(f'{where} and preparing it failed ({type(e).__name__}: {_one_line(e)}); {hint}') from None
    return builder, False


def _unreachable(builder):
    """The first download host of the dataset that does not answer within _CONNECT_SECONDS, or None."""
    hosts = sorted({urllib.parse.urlsplit(url).hostname for url in (builder.url_infos or {})} - {None})
    for host in hosts[:3] or ['storage.googleapis.com']:
        try:
            socket.create_connection((host, 443), timeout=_CONNECT_SECONDS).close()
        except OSError:
            return host
    return None


def _new_folders(builder):
    """The outermost folders on the way to the dataset's, and tfds's downloads/, that do not exist yet."""
    full = builder.info.full_name  # name[/config]/version
    root = os.fspath(builder.data_path)[:-len(full) - 1]
    chain = [root] + [os.path.join(root, *full.split('/')[:i]) for i in range(1, full.count('/') + 2)]
    first_new = next((folder for folder in chain if not os.path.exists(folder)), None)
    return [f for f in (first_new, os.path.join(root, 'downloads')) if f and not os.path.exists(f)
            and not (first_new == root and f != root)]


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
        return tf.data.Dataset.from_tensor_slices(_debian_arrays(split))
    _tfds_split_size(builder, dataset, split)  # validates the split string
    return _examples(builder.as_dataset(split=split, shuffle_files=False))


def source(dataset: str, split: str, data_dir: str | None = None):
    """The split as a trainer.stream source: Debian's Fashion-MNIST arrays by index, or a prepared dataset's
    files, each input shard reading its own files (tfds's ReadConfig input_context)."""
    builder, from_debian = _source(dataset, data_dir)
    if from_debian:
        images, labels = _debian_arrays(split)
        return stream.arrays(images, labels, f'{dataset} {split} (Debian\'s files, {len(labels)} examples)')
    size = _tfds_split_size(builder, dataset, split)

    def shard(index, count):
        context = tf.distribute.InputContext(num_input_pipelines=count, input_pipeline_id=index)
        return _examples(builder.as_dataset(split=split, shuffle_files=False,
                                            read_config=tfds.ReadConfig(input_context=context)))
    spec = shard(0, 1).element_spec
    return stream.Sequential(spec, shard, lambda count: [size] if count == 1 else None, False,
                             stream.example_bytes(spec), f'tfds {dataset} {split} ({size} examples)')


def _examples(examples):
    return examples.map(lambda ex: (ex['image'], ex['label']), num_parallel_calls=tf.data.AUTOTUNE)


def _debian_arrays(split):
    slices = _debian_slices(split)
    arrays = {name: _debian(fashion_mnist.read, name) for name, _, _ in slices}
    return tuple(np.concatenate([arrays[name][k][part] for name, part, _ in slices]) for k in (0, 1))


def info_of(examples, num_classes=None):
    """The DatasetInfo of the user's unbatched (image [H, W, C], integer label) examples, for the built-in
    models; num_classes: default the largest label + 1 (the labels are read once). Raises DataError."""
    images, labels = examples.element_spec[:2]
    if not (isinstance(images, tf.TensorSpec) and images.shape.rank == 3 and isinstance(labels, tf.TensorSpec)
            and labels.shape.rank == 0 and labels.dtype.is_integer):
        raise DataError(f'the built-in models take (image [H, W, C], integer label) examples; train_data has '
                        f'{examples.element_spec}; pass your own model for other data')
    smallest, largest = (int(v) for v in examples.reduce(
        (tf.constant(0, tf.int64), tf.constant(-1, tf.int64)),
        lambda bounds, example: (tf.minimum(bounds[0], tf.cast(example[1], tf.int64)),
                                 tf.maximum(bounds[1], tf.cast(example[1], tf.int64)))))
    if smallest < 0:
        raise DataError(f'train_data has a negative label ({smallest}); labels are class ids 0..num_classes-1')
    if num_classes is None:
        num_classes = largest + 1
    elif largest >= num_classes:
        raise DataError(f'num_classes={num_classes} but train_data has the label {largest}')
    return DatasetInfo(name='custom', image_shape=tuple(images.shape.as_list()), num_classes=num_classes,
                       class_names=tuple(str(i) for i in range(num_classes)))
