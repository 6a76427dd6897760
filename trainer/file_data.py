"""The built-in image task's file sources for the CLI: a folder of images (one subfolder per class) and .npz arrays.

A folder is listed as `keras.utils.image_dataset_from_directory` lists it (JPEG, PNG, BMP, GIF; classes are
the subfolders in sorted order; files in sorted order), and every image's header is read up front, so that a
file that is not such an image, an empty class, a single class or mixed sizes without --image_size stop the
run with one line before anything is written. Images are decoded as they are read (RGB uint8), resized to
--image_size when given (bilinear, rounded back to uint8). An .npz is read whole by numpy: `x` and `y`, or
the arrays named in `FILE.npz:FEATURES,LABELS`. Both are trainer.stream.RandomAccess sources: by index, so
the in-memory and the streamed paths give the same batches.
"""
import hashlib
import os
import struct

import numpy as np
import tensorflow as tf

from trainer import stream, tfds_data
from trainer.data import DataError, one_line

_CHANNELS = 3  # decoded as RGB, as image_dataset_from_directory's default color_mode


def is_file_dataset(dataset):
    """Whether --dataset names a folder or an .npz file rather than a tfds dataset."""
    path = dataset.split(':')[0]
    return path.endswith('.npz') or os.path.isdir(path) or dataset.startswith(('/', './', '../', '~'))


def load(dataset, image_size=None, seed=0, validation_split=None):
    """(train source, eval source or None, DatasetInfo, sha256 of what identifies the files) of a file dataset."""
    path = os.path.expanduser(dataset.split(':')[0])
    if path.endswith('.npz') or ':' in dataset:
        return _npz(dataset, seed, validation_split)
    if not os.path.isdir(path):
        raise DataError(f'--dataset={dataset}: no such folder (or .npz file); give a folder of images with one '
                        'subfolder per class, an .npz file, or a tensorflow-datasets name')
    return _folder(path, image_size, seed, validation_split)


def load_eval(dataset, info, image_size=None):
    """The eval source of --eval_dataset, checked against the training data's info."""
    path = os.path.expanduser(dataset.split(':')[0])
    if path.endswith('.npz') or ':' in dataset:
        source, _, eval_info, _ = _npz(dataset, 0, None, name='--eval_dataset')
        if eval_info.num_classes > info.num_classes:
            raise DataError(f'--eval_dataset={dataset} has label {eval_info.num_classes - 1}; the training data\'s '
                            f'labels are 0..{info.num_classes - 1}')
    else:
        if not os.path.isdir(path):
            raise DataError(f'--eval_dataset={dataset}: no such folder or .npz file')
        # Without --image_size its images must have the training images' size, as those must have one size.
        source, _, eval_info, _ = _folder(path, image_size, 0, None, name='--eval_dataset',
                                          class_names=info.class_names)
    if eval_info.image_shape != info.image_shape:
        raise DataError(f'--eval_dataset={dataset} has images {eval_info.image_shape}; the training data has '
                        f'{info.image_shape}' + ('' if image_size else ' (--image_size resizes both)'))
    return source


def _split(count, seed, validation_split, name):
    """(train indices, eval indices or None) of `count` examples: a seeded draw of the held-out fraction."""
    if validation_split is None:
        return np.arange(count), None
    held_out = round(validation_split * count)
    if not 0 < held_out < count:
        raise DataError(f'--validation_split={validation_split} of {count} examples of {name} leaves '
                        f'{held_out} for evaluation and {count - held_out} for training; both need one or more')
    order = np.random.default_rng(seed).permutation(count)
    return np.sort(order[:count - held_out]), np.sort(order[count - held_out:])


# --- folders of images --------------------------------------------------------------------------------------

def _listing(path):
    """(file paths, labels, class names) as image_dataset_from_directory lists them."""
    import keras
    try:
        listed = keras.utils.image_dataset_from_directory(path, labels='inferred', label_mode='int', batch_size=None,
                                                          shuffle=False, image_size=(8, 8), verbose=False)
    except (ValueError, OSError) as e:
        raise DataError(f'--dataset={path}: {one_line(e)}') from None
    paths, classes = list(listed.file_paths), tuple(listed.class_names)
    labels = [classes.index(os.path.relpath(p, path).split(os.sep)[0]) for p in paths]
    return paths, np.array(labels, np.int64), classes


def _folder(path, image_size, seed, validation_split, name='--dataset', class_names=None):
    paths, labels, classes = _listing(path)
    if class_names is not None and classes != tuple(class_names):
        raise DataError(f'{name}={path} has the classes {", ".join(classes)}; the training folder has '
                        f'{", ".join(class_names)}')
    counts = np.bincount(labels, minlength=len(classes))
    if class_names is None:
        if len(classes) < 2:
            raise DataError(f'{name}={path} has {len(classes)} class folder(s) ({", ".join(classes) or "none"}); '
                            'a classifier needs two or more subfolders of images')
        empty = [c for c, n in zip(classes, counts) if n == 0]
        if empty:
            raise DataError(f'{name}={path}: the class folder {empty[0]!r} holds no JPEG, PNG, BMP or GIF image')
    sizes = {}
    for file in paths:
        sizes.setdefault(_image_size(file), file)
    if image_size is None and len(sizes) > 1:
        (first, a), (second, b) = list(sizes.items())[:2]
        raise DataError(f'{name}={path} has images of different sizes ({a}: {first[0]}x{first[1]}, {b}: '
                        f'{second[0]}x{second[1]}); give --image_size=HEIGHT,WIDTH to resize them')
    size = tuple(image_size) if image_size is not None else next(iter(sizes))
    digest = hashlib.sha256()
    for file, label in zip(paths, labels):
        digest.update(f'{os.path.relpath(file, path)}\0{os.path.getsize(file)}\0{label}\n'.encode())
    train, held_out = _split(len(paths), seed, validation_split, f'{name}={path}')
    info = tfds_data.DatasetInfo(name=os.path.basename(os.path.normpath(path)), image_shape=(*size, _CHANNELS),
                                 num_classes=len(classes), class_names=classes)
    resize = image_size is not None and set(sizes) != {size}
    make = lambda indices, what: _image_source(  # noqa: E731
        [paths[i] for i in indices], labels[indices], size, resize, f'{what} ({len(indices)} images)')
    return (make(train, f'the images of {path}'),
            None if held_out is None else make(held_out, f'--validation_split={validation_split} of {path}'),
            info, digest.hexdigest())


def _image_source(paths, labels, size, resize, describe):
    files, classes = tf.constant(paths), tf.constant(labels)

    def read(index):
        image = tf.io.decode_image(tf.io.read_file(files[index]), channels=_CHANNELS, expand_animations=False)
        if resize:
            image = tf.cast(tf.round(tf.clip_by_value(tf.image.resize(image, size), 0, 255)), tf.uint8)
        return tf.ensure_shape(image, (*size, _CHANNELS)), classes[index]
    spec = (tf.TensorSpec((*size, _CHANNELS), tf.uint8), tf.TensorSpec([], tf.int64))
    return stream.RandomAccess(len(paths), spec, read, size[0] * size[1] * _CHANNELS + 8, describe, per_example=True)


def _image_size(path):
    """(height, width) from a JPEG, PNG, GIF or BMP file's header; DataError naming the file otherwise."""
    try:
        with open(path, 'rb') as f:
            head = f.read(32)
            if head[:8] == b'\x89PNG\r\n\x1a\n' and head[12:16] == b'IHDR':
                width, height = struct.unpack('>II', head[16:24])
            elif head[:6] in (b'GIF87a', b'GIF89a'):
                width, height = struct.unpack('<HH', head[6:10])
            elif head[:2] == b'BM' and len(head) >= 26:
                width, height = struct.unpack('<ii', head[18:26])
                height = abs(height)
            elif head[:2] == b'\xff\xd8':
                height, width = _jpeg_size(head + f.read())
            else:
                raise ValueError('not a JPEG, PNG, BMP or GIF file')
    except (OSError, ValueError, struct.error) as e:
        raise DataError(f'{path} is not a readable image ({one_line(e)}); remove it or replace it (the run reads '
                        'every file of the folder)') from None
    if not (width > 0 and height > 0):
        raise DataError(f'{path} is not a readable image (its header gives {width}x{height} pixels)')
    return height, width


def _jpeg_size(content):
    """(height, width) of the first start-of-frame marker of a JPEG file's bytes."""
    position = 2
    while position + 9 <= len(content):
        if content[position] != 0xFF:
            raise ValueError('a JPEG marker is broken')
        marker = content[position + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            position += 2
            continue
        length = struct.unpack('>H', content[position + 2:position + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return struct.unpack('>HH', content[position + 5:position + 9])
        position += 2 + length
    raise ValueError('the JPEG file ends before its frame header')


# --- .npz arrays ----------------------------------------------------------------------------------------------

def _npz(dataset, seed, validation_split, name='--dataset'):
    path, _, names = dataset.partition(':')
    path = os.path.expanduser(path)
    keys = names.split(',') if names else ['x', 'y']
    if len(keys) != 2 or not all(keys):
        raise DataError(f'{name}={dataset}: name two arrays, FILE.npz:FEATURES,LABELS')
    try:
        with np.load(path, allow_pickle=False) as arrays:
            missing = [k for k in keys if k not in arrays.files]
            if missing:
                raise DataError(f'{name}={dataset}: {path} has no array {missing[0]!r} (it has: '
                                f'{", ".join(arrays.files)}); name them as FILE.npz:FEATURES,LABELS')
            x, y = (arrays[k] for k in keys)
    except (OSError, ValueError) as e:
        raise DataError(f'{name}={dataset}: cannot read {path} as .npz ({one_line(e)})') from None
    if len(x) != len(y) or len(x) == 0:
        raise DataError(f'{name}={dataset}: {keys[0]} has {len(x)} examples and {keys[1]} {len(y)}; they must be '
                        'the same number, one or more')
    if x.ndim == 3:  # [N, H, W]: one channel
        x = x[..., None]
    if x.ndim != 4 or y.ndim != 1 or y.dtype.kind not in 'iu':
        raise DataError(f'{name}={dataset}: the built-in models take images {keys[0]} [N, H, W] or [N, H, W, C] '
                        f'and integer labels {keys[1]} [N]; got {keys[0]} {x.dtype}{list(x.shape)} and '
                        f'{keys[1]} {y.dtype}{list(y.shape)}')
    if x.dtype != np.uint8:
        # The built-in models scale pixels by 1/255: floats already in [0, 1] would be scaled twice.
        raise DataError(f'{name}={dataset}: the built-in image models take {keys[0]} as uint8 pixels 0..255; got '
                        f'{x.dtype} (convert it, or train other arrays through the Python API, trainer.train)')
    if y.min() < 0:
        raise DataError(f'{name}={dataset}: {keys[1]} has a negative label ({y.min()}); labels are class ids')
    digest = hashlib.sha256()
    for array in (x, y):
        digest.update(memoryview(np.ascontiguousarray(array)).cast('B'))
    digest = digest.hexdigest()
    train, held_out = _split(len(x), seed, validation_split, f'{name}={dataset}')
    classes = int(y.max()) + 1
    if classes < 2 and name == '--dataset':
        raise DataError(f'{name}={dataset}: every label of {keys[1]} is 0; a classifier needs two or more classes')
    info = tfds_data.DatasetInfo(name=os.path.basename(path).removesuffix('.npz'), image_shape=tuple(x.shape[1:]),
                                 num_classes=classes, class_names=tuple(str(i) for i in range(classes)))

    def make(indices, what):  # without a split, the arrays as loaded (not a copy made by indexing)
        return stream.arrays(*((x, y) if len(indices) == len(x) else (x[indices], y[indices])), what)
    return (make(train, f'{path} ({len(train)} examples)'),
            None if held_out is None else make(held_out, f'--validation_split={validation_split} of {path}'),
            info, digest)
