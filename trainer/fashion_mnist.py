"""Fashion-MNIST read from Debian's `dataset-fashion-mnist` package, writing nothing.

Debian recompressed the upstream archives, so tfds's archive checksums do not match them;
the decompressed IDX files are identical to upstream's and are checked by their sha256.
Errors are ValueErrors with a one-line message.
"""
import gzip
import hashlib
import os
import struct
import zlib

import numpy as np

DEBIAN_DIR = '/usr/share/datasets/fashion-mnist'
INSTALL = 'apt-get install dataset-fashion-mnist'
_REINSTALL = 'reinstall it: apt-get install --reinstall dataset-fashion-mnist'
_PREFIXES = {'train': 'train', 'test': 't10k'}
_KINDS = {'images': ('idx3', 2051, 16), 'labels': ('idx1', 2049, 8)}  # suffix, magic, header bytes
_SHA256 = {  # of the decompressed files, header included
    'train-images-idx3-ubyte': 'c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888',
    'train-labels-idx1-ubyte': 'bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9',
    't10k-images-idx3-ubyte': '5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b',
    't10k-labels-idx1-ubyte': '0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34',
}


def _name(split, kind):
    return f'{_PREFIXES[split]}-{kind}-{_KINDS[kind][0]}-ubyte'


def _path(split, kind):
    return os.path.join(DEBIAN_DIR, _name(split, kind) + '.gz')


def available():
    """Whether all four files of the Debian package are present."""
    return all(os.path.isfile(_path(split, kind)) for split in _PREFIXES for kind in _KINDS)


def _read(split, kind, size=-1):
    """Returns (decompressed bytes, example count); the whole file is sha256-checked."""
    path = _path(split, kind)
    try:
        with gzip.open(path) as f:
            data = f.read(size)
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f'cannot read {path} ({e}); {_REINSTALL}') from None
    _, magic, header = _KINDS[kind]
    if len(data) < header or struct.unpack('>I', data[:4])[0] != magic:
        raise ValueError(f'{path} is not an IDX {kind} file; {_REINSTALL}')
    if size < 0 and hashlib.sha256(data).hexdigest() != _SHA256[_name(split, kind)]:
        raise ValueError(f'{path} does not hold the Fashion-MNIST data (sha256 mismatch); {_REINSTALL}')
    return data, struct.unpack('>I', data[4:8])[0]


def split_sizes():
    """Examples per split ('train', 'test'), from the IDX headers."""
    sizes = {}
    for split in _PREFIXES:
        (_, images), (_, labels) = _read(split, 'images', 16), _read(split, 'labels', 8)
        if images != labels:
            raise ValueError(f'{_path(split, "images")} has {images} images but the labels file '
                             f'{labels} labels; {_REINSTALL}')
        sizes[split] = images
    return sizes


def read(split):
    """Images uint8 [N, 28, 28, 1] and labels int64 [N] of 'train' or 'test'."""
    images, count = _read(split, 'images')
    labels, _ = _read(split, 'labels')
    return (np.frombuffer(images, np.uint8, offset=16).reshape(count, 28, 28, 1),
            np.frombuffer(labels, np.uint8, offset=8).astype(np.int64))
