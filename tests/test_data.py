"""Tests of trainer.tfds_data (tfds loading, Debian Fashion-MNIST), trainer.data (step-indexed batches of any
nest) and trainer.augment."""
import gzip
import io
import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from trainer import augment as augment_lib
from trainer import config as config_lib
from trainer import data, fashion_mnist, tfds_data

DEBIAN_DIR = '/usr/share/datasets/fashion-mnist'
MOCK_EXAMPLES = 8


def _one_line_error(excinfo, *fragments):
    message = str(excinfo.value)
    assert '\n' not in message
    for fragment in fragments:
        assert fragment in message


def _write_metadata(name, data_dir, sizes):
    """Writes the metadata tfds leaves in `data_dir` after preparing `name` with these splits."""
    builder = tfds.builder(name, data_dir=data_dir)
    template = tfds.core.ShardedFileTemplate(data_dir=builder.data_path, dataset_name=name,
                                             filetype_suffix='tfrecord')
    builder.info.set_splits(tfds.core.SplitDict([
        tfds.core.SplitInfo(name=split, shard_lengths=[n], num_bytes=0,
                            filename_template=template.replace(split=split))
        for split, n in sizes.items()]))
    builder.data_path.mkdir(parents=True)
    builder.info.write_to_directory(builder.data_path)


def _mock_prepared(name, data_dir, sizes):
    _write_metadata(name, data_dir, sizes)
    return tfds.testing.mock_data(num_examples=MOCK_EXAMPLES, data_dir=str(data_dir),
                                  policy=tfds.testing.MockPolicy.USE_FILES)


@pytest.fixture
def offline(monkeypatch):
    """tfds cannot download anything, as on a machine without network."""
    def fail(self, *args, **kwargs):
        os.makedirs(os.path.join(self.data_path, 'incomplete'))  # as tfds does before it downloads
        os.makedirs(os.path.join(os.path.dirname(os.path.dirname(self.data_path)), 'downloads', 'partial'))
        raise ConnectionError(f'cannot reach the download server for {self.name}')
    monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare', fail)


# --- any tfds dataset ---------------------------------------------------------------------

def test_info_comes_from_the_tfds_features(tmp_path):
    with _mock_prepared('mnist', tmp_path, {'train': 60, 'test': 20}):
        assert tfds_data.info('mnist', str(tmp_path)) == tfds_data.DatasetInfo(
            'mnist', (28, 28, 1), 10, tuple(str(i) for i in range(10)))
    with _mock_prepared('cifar10', tmp_path, {'train': 50, 'test': 10}):
        cifar = tfds_data.info('cifar10', str(tmp_path))
        assert cifar.image_shape == (32, 32, 3) and cifar.num_classes == 10


def test_prepared_tfds_dataset_sizes_and_examples(tmp_path):
    with _mock_prepared('mnist', tmp_path, {'train': 60, 'test': 20}):
        assert tfds_data.num_examples('mnist', 'train', str(tmp_path)) == 60
        assert tfds_data.num_examples('mnist', 'train[:25%]', str(tmp_path)) == 60 // 4
        assert tfds_data.num_examples('mnist', 'train[10:]+test[:5]', str(tmp_path)) == 50 + 5
        examples = tfds_data.load('mnist', 'test[:3]', str(tmp_path))
        assert examples.element_spec == (tf.TensorSpec([28, 28, 1], tf.uint8),
                                         tf.TensorSpec([], tf.int64))
        labels = [int(label) for _, label in examples]
        assert len(labels) == MOCK_EXAMPLES  # the mock ignores the slice
        assert all(0 <= label < 10 for label in labels)


@pytest.mark.parametrize('split', ['tes', 'validation', 'train[:5', 'train[:200%]', 'test[:21]'])
def test_bad_split_strings(tmp_path, split):
    with _mock_prepared('mnist', tmp_path, {'train': 60, 'test': 20}):
        for call in (tfds_data.num_examples, tfds_data.load):
            with pytest.raises(data.DataError) as excinfo:
                call('mnist', split, str(tmp_path))
            _one_line_error(excinfo, '--train_split/--eval_split', repr(split))


def test_unknown_dataset(tmp_path):
    with pytest.raises(data.DataError) as excinfo:
        tfds_data.info('no_such_dataset', str(tmp_path))
    _one_line_error(excinfo, '--dataset=no_such_dataset', 'fashion_mnist')


def test_dataset_without_images(tmp_path):
    with pytest.raises(data.DataError) as excinfo:
        tfds_data.info('imdb_reviews', str(tmp_path))
    _one_line_error(excinfo, '--dataset=imdb_reviews', 'image-classification')


def test_unprepared_dataset_offline_fails_fast_and_leaves_nothing(tmp_path, monkeypatch):
    """No download host answers (this machine has no network; made certain by refusing every connection)."""
    def refuse(address, timeout=None):
        raise OSError(f'refused {address}')
    monkeypatch.setattr(socket, 'create_connection', refuse)
    data_dir = tmp_path / 'tfds'
    began = time.monotonic()
    with pytest.raises(data.DataError) as excinfo:
        tfds_data.load('mnist', 'train', str(data_dir))
    assert time.monotonic() - began < 10
    _one_line_error(excinfo, '--dataset=mnist', '--data_dir', str(data_dir), 'storage.googleapis.com',
                    'cannot be reached')
    assert not data_dir.exists()


def test_failed_preparation_removes_the_folders_it_made(tmp_path, monkeypatch, offline):
    """A host answers, but the download fails midway, after tfds made its folders."""
    monkeypatch.setattr(tfds_data, '_unreachable', lambda builder: None)
    data_dir = tmp_path / 'tfds'
    (data_dir / 'cifar10').mkdir(parents=True)  # another dataset's, kept
    with pytest.raises(data.DataError) as excinfo:
        tfds_data.load('mnist', 'train', str(data_dir))
    _one_line_error(excinfo, '--dataset=mnist', '--data_dir', str(data_dir), 'ConnectionError')
    assert sorted(os.listdir(data_dir)) == ['cifar10']


# --- Fashion-MNIST from Debian's package ----------------------------------------------------

@pytest.fixture
def debian_files():
    if not os.path.isdir(DEBIAN_DIR):
        pytest.fail(f'{DEBIAN_DIR} is missing: run `apt-get install dataset-fashion-mnist`; '
                    'CI installs it and this test must run')
    return DEBIAN_DIR


def test_real_fashion_mnist(tmp_path, debian_files):
    data_dir = str(tmp_path)
    assert tfds_data.num_examples('fashion_mnist', 'train', data_dir) == 60_000
    assert tfds_data.num_examples('fashion_mnist', 'test', data_dir) == 10_000
    assert tfds_data.num_examples('fashion_mnist', 'train[:5%]', data_dir) == 3_000
    examples = tfds_data.load('fashion_mnist', 'test[:100]', data_dir)
    assert examples.element_spec == (tf.TensorSpec([28, 28, 1], tf.uint8),
                                     tf.TensorSpec([], tf.int64))
    images, labels = next(iter(examples.batch(1000)))
    assert images.shape == (100, 28, 28, 1) and labels.shape == (100,)
    assert labels[0] == 9  # the first test image is an ankle boot
    _, all_labels = next(iter(tfds_data.load('fashion_mnist', 'test', data_dir).batch(10_000)))
    assert np.array_equal(labels, all_labels[:100])
    assert np.array_equal(np.bincount(all_labels), [1000] * 10)  # balanced: 1000 per class
    _, ends = next(iter(tfds_data.load('fashion_mnist', 'test[:2]+test[-2:]', data_dir).batch(4)))
    assert np.array_equal(ends, np.concatenate([all_labels[:2], all_labels[-2:]]))
    assert tfds_data.info('fashion_mnist', data_dir).class_names[9] == 'Ankle boot'
    assert not any(tmp_path.iterdir())  # read in place, nothing written


def test_prepared_fashion_mnist_wins_over_debian(tmp_path):
    with _mock_prepared('fashion_mnist', tmp_path, {'train': 30, 'test': 10}):
        assert tfds_data.num_examples('fashion_mnist', 'train', str(tmp_path)) == 30


def test_fashion_mnist_missing_everywhere(tmp_path, monkeypatch, offline):
    monkeypatch.setattr(fashion_mnist, 'DEBIAN_DIR', str(tmp_path / 'absent'))
    with pytest.raises(data.DataError) as excinfo:
        tfds_data.num_examples('fashion_mnist', 'train', str(tmp_path))
    _one_line_error(excinfo, '--dataset=fashion_mnist', 'apt-get install dataset-fashion-mnist')


def _flip_last_label(path):
    payload = bytearray(gzip.decompress(path.read_bytes()))
    payload[-1] = (payload[-1] + 1) % 10
    path.write_bytes(gzip.compress(bytes(payload)))


def _truncate(path):
    path.write_bytes(path.read_bytes()[:1000])


def _wrong_magic(path):
    payload = bytearray(gzip.decompress(path.read_bytes()))
    payload[3] = 0x03  # 2049 -> 2051: an images header on a labels file
    path.write_bytes(gzip.compress(bytes(payload)))


@pytest.mark.parametrize('damage, name, message', [
    (_flip_last_label, 't10k-labels-idx1-ubyte.gz', 'sha256 mismatch'),
    (_truncate, 't10k-images-idx3-ubyte.gz', 'cannot read'),
    (_wrong_magic, 't10k-labels-idx1-ubyte.gz', 'is not an IDX labels file'),
])
def test_corrupt_debian_file(tmp_path, monkeypatch, debian_files, damage, name, message):
    copy = tmp_path / 'debian'
    shutil.copytree(debian_files, copy, ignore=lambda d, names: [n for n in names if 'train' in n])
    for train_file in ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'):
        (copy / train_file).symlink_to(os.path.join(debian_files, train_file))
    damage(copy / name)
    monkeypatch.setattr(fashion_mnist, 'DEBIAN_DIR', str(copy))
    with pytest.raises(data.DataError) as excinfo:
        tfds_data.load('fashion_mnist', 'test[:10]', str(tmp_path / 'data'))
    _one_line_error(excinfo, '--dataset=fashion_mnist', str(copy / name), message,
                    'apt-get install --reinstall dataset-fashion-mnist')


# --- batches indexed by the global step -----------------------------------------------------

def _examples(n):
    """n examples whose image pixels all equal 2 * label, so pairs can be checked."""
    labels = np.arange(n, dtype=np.int64)
    images = np.broadcast_to((2 * labels).astype(np.uint8)[:, None, None, None], (n, 2, 2, 1))
    return tf.data.Dataset.from_tensor_slices((images, labels))


def _take(batches, count):
    return [(images.numpy(), labels.numpy()) for images, labels in batches.take(count)]


def _batches(examples, n, batch_size, seed, augment=(), cutout_size=8):
    return data.TrainBatches(examples, n, batch_size, seed, transform=augment_lib.transform(augment, cutout_size))


def _stream(n, batch_size, seed, start_step, count):
    return _take(data.TrainBatches(_examples(n), n, batch_size, seed).dataset(start_step), count)


def _assert_same(a, b):
    assert len(a) == len(b)
    for (images_a, labels_a), (images_b, labels_b) in zip(a, b):
        assert np.array_equal(images_a, images_b) and np.array_equal(labels_a, labels_b)


def test_train_batch_types_and_pairs():
    (images, labels), = _stream(10, 3, seed=1, start_step=0, count=1)
    assert images.dtype == np.uint8 and images.shape == (3, 2, 2, 1)  # as stored: the model casts
    assert labels.dtype == np.int64 and labels.shape == (3,)  # as stored too
    assert np.array_equal(images[:, 0, 0, 0], 2.0 * labels)  # raw values, pairs intact


def test_steps_per_epoch():
    assert data.steps_per_epoch(60_000, 32) == 1875
    assert data.steps_per_epoch(10, 3) == 3
    with pytest.raises(data.DataError) as excinfo:
        data.steps_per_epoch(10, 11)
    _one_line_error(excinfo, '--batch_size=11', 'lower it or train on more examples')
    with pytest.raises(data.DataError):
        data.steps_per_epoch(10, 0)


@pytest.mark.parametrize('start_step', [1, 2, 3, 4, 5, 6, 10, 17, 25])
def test_resume_equals_uninterrupted(start_step):
    # 10 examples, batch 3: 3 steps per epoch, so these starts cover mid-epoch, epoch
    # boundaries and several epochs in.
    uninterrupted = _stream(10, 3, seed=7, start_step=0, count=30)
    resumed = _stream(10, 3, seed=7, start_step=start_step, count=5)
    _assert_same(resumed, uninterrupted[start_step:start_step + 5])


@pytest.mark.parametrize('augment', [(), ('flip', 'cutout')])
def test_the_batch_of_a_step_in_graph_is_the_streams(augment):
    """The loop's batches(step), in a tf.function, equals the dataset's element for that step."""
    n = 40
    images = np.random.default_rng(0).integers(1, 256, size=(n, 6, 6, 1), dtype=np.uint8)
    batches = _batches(tf.data.Dataset.from_tensor_slices((images, np.arange(n))), n, 8, seed=5,
                       augment=augment, cutout_size=3)
    in_graph = tf.function(batches)
    for start in (0, 3, 77, 3 * 10**9):  # more than one chunk of the stream, epoch ends, far away
        stream = _take(batches.dataset(start), 40)
        for i, (stream_images, stream_labels) in enumerate(stream):
            step_images, step_labels = in_graph(tf.constant(start + i, tf.int64))
            assert step_images.dtype == tf.uint8 and step_labels.dtype == tf.int64
            np.testing.assert_array_equal(step_images.numpy(), stream_images)
            np.testing.assert_array_equal(step_labels.numpy(), stream_labels)
    _assert_same([tuple(t.numpy() for t in batches(7))], _take(batches.dataset(7), 1))  # eagerly, a Python int


def test_batches_follow_index_shuffle_of_seed_and_epoch():
    """Batch s holds positions [p * B, (p + 1) * B) of index_shuffle's permutation for (seed, s // steps)."""
    n, batch_size, seed = 10, 3, 7
    steps = n // batch_size
    for start_step in (0, 4, 3 * 10**9 + 1):  # a run's start, mid-epoch, far away
        stream = _stream(n, batch_size, seed, start_step, count=40)  # more steps than one chunk, many epochs
        for i, (_, labels) in enumerate(stream):
            epoch, position = divmod(start_step + i, steps)
            expected = [int(tf.random.experimental.index_shuffle(
                tf.constant(position * batch_size + j, tf.int64), seed=tf.constant([seed, epoch], tf.int64),
                max_index=tf.constant(n - 1, tf.int64))) for j in range(batch_size)]
            assert labels.tolist() == expected, (start_step, i)


def test_resume_far_away_matches_its_epoch():
    epoch_start = 3 * 10**9  # step of epoch 1e9; reaching it by replay would never finish
    _assert_same(_stream(10, 3, seed=7, start_step=epoch_start + 2, count=2),
                 _stream(10, 3, seed=7, start_step=epoch_start, count=4)[2:])


@pytest.mark.parametrize('n, batch_size', [(10, 5), (10, 3), (7, 7)])
def test_each_epoch_is_a_permutation(n, batch_size):
    steps = n // batch_size
    stream = _stream(n, batch_size, seed=3, start_step=0, count=6 * steps)
    orders = [np.concatenate([labels for _, labels in stream[e * steps:(e + 1) * steps]])
              for e in range(6)]
    for order in orders:
        assert len(order) == steps * batch_size
        assert len(set(order)) == len(order) and set(order) <= set(range(n))
    assert len({tuple(order) for order in orders}) == 6  # every epoch has its own order


def test_seed_changes_the_order():
    first = np.concatenate([labels for _, labels in _stream(10, 5, 1, 0, 2)])
    second = np.concatenate([labels for _, labels in _stream(10, 5, 2, 0, 2)])
    assert sorted(first) == sorted(second) and not np.array_equal(first, second)


def _flat(stream):
    return np.concatenate([np.concatenate([images.ravel(), labels]) for images, labels in stream])


def test_same_batches_in_another_process():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = ('import sys; sys.path.insert(0, sys.argv[1]); import numpy as np;'
              'from tests.test_data import _flat, _stream;'
              'np.save(sys.stdout.buffer, _flat(_stream(100, 8, 11, 40, 3)))')
    out = subprocess.run([sys.executable, '-c', script, root], capture_output=True, check=True,
                         env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'})
    assert np.array_equal(np.load(io.BytesIO(out.stdout)), _flat(_stream(100, 8, 11, 40, 3)))


def test_batches_check_the_example_count():
    with pytest.raises(ValueError, match='num_examples=9'):
        data.TrainBatches(_examples(10), 9, 3, seed=0)


def test_eval_batches_cover_everything_once():
    batches = data.eval_batches(_examples(10), 4)
    for _ in range(2):  # second pass comes from the cache
        taken = _take(batches, -1)
        assert [len(labels) for _, labels in taken] == [4, 4, 2]
        labels = np.concatenate([labels for _, labels in taken])
        assert labels.dtype == np.int64 and np.array_equal(labels, np.arange(10))
        images = np.concatenate([images for images, _ in taken])
        assert images.dtype == np.uint8 and np.array_equal(images[:, 1, 1, 0], 2 * labels)


def test_augment_mirrors_images_as_a_function_of_the_step():
    n = 64
    labels = np.arange(n, dtype=np.int64)
    images = (labels[:, None, None, None] + 64 * np.arange(3)[None, None, :, None]).astype(np.uint8)
    examples = tf.data.Dataset.from_tensor_slices((np.broadcast_to(images, (n, 2, 3, 1)), labels))
    plain = _take(data.TrainBatches(examples, n, 16, seed=3).dataset(), 8)
    augmented = _take(_batches(examples, n, 16, seed=3, augment=('flip',)).dataset(), 8)
    resumed = _take(_batches(examples, n, 16, seed=3, augment=('flip',)).dataset(start_step=5), 3)
    _assert_same(resumed, augmented[5:])
    flipped = 0
    for (images_a, labels_a), (images_p, labels_p) in zip(augmented, plain):
        assert np.array_equal(labels_a, labels_p)
        for a, p in zip(images_a, images_p):
            mirrored = np.array_equal(a, p[:, ::-1])
            assert mirrored or np.array_equal(a, p)
            flipped += mirrored
    assert 32 < flipped < 96  # about half of the 128 images


def _zeroed_boxes(augmented, plain):
    """Per image: None when unchanged, else the (rows, columns) extent of the pixels set to zero."""
    boxes = []
    for images_a, images_p in zip(augmented, plain):
        for a, p in zip(images_a, images_p):
            changed = a != p
            assert np.all(a[changed] == 0), 'cutout only writes zeros'
            rows, columns = np.nonzero(changed[..., 0])
            boxes.append(None if rows.size == 0 else (rows.min(), rows.max() + 1, columns.min(), columns.max() + 1,
                                                      int(changed.sum())))
    return boxes


def test_cutout_zeros_one_clipped_square_in_about_half_the_images():
    n, size, side = 64, 5, 12
    labels = np.arange(n, dtype=np.int64)
    images = np.full((n, side, side, 1), 200, np.uint8)
    examples = tf.data.Dataset.from_tensor_slices((images, labels))
    plain = _take(data.TrainBatches(examples, n, 16, seed=3).dataset(), 16)
    augmented = _take(_batches(examples, n, 16, seed=3, augment=('cutout',), cutout_size=size).dataset(), 16)
    _assert_same(_take(_batches(examples, n, 16, seed=3, augment=('cutout',),
                                cutout_size=size).dataset(start_step=7), 3), augmented[7:10])
    boxes = [box for box in _zeroed_boxes([a for a, _ in augmented], [p for p, _ in plain]) if box is not None]
    assert 256 * 0.35 < len(boxes) < 256 * 0.65  # probability 1/2 over 256 images
    full = 0
    for top, bottom, left, right, count in boxes:
        height, width = bottom - top, right - left
        assert count == height * width, 'the zeroed pixels form one rectangle'
        assert 1 <= height <= size and 1 <= width <= size
        # A side shorter than `size` only where the square crosses the border.
        assert height == size or top == 0 or bottom == side
        assert width == size or left == 0 or right == side
        full += height == width == size
    assert len(boxes) * 0.3 < full < len(boxes) * 0.6  # whole for 8 of 12 centres on each axis: 44%


def test_flip_then_cutout_and_unknown_names():
    n = 32
    images = np.random.default_rng(0).integers(1, 256, size=(n, 6, 6, 1), dtype=np.uint8)
    examples = tf.data.Dataset.from_tensor_slices((images, np.zeros(n, np.int64)))
    flipped = _take(_batches(examples, n, 8, seed=1, augment=('flip',)).dataset(), 4)
    both = _take(_batches(examples, n, 8, seed=1, augment=('flip', 'cutout'), cutout_size=3).dataset(), 4)
    boxes = _zeroed_boxes([b for b, _ in both], [f for f, _ in flipped])
    assert any(boxes) and not all(boxes)
    with pytest.raises(config_lib.ConfigError, match="augment='blur' is not one of: flip, cutout"):
        config_lib.Config(model_dir='never', augment=('blur',))


def test_batches_of_any_nest_and_dtype_keep_values_dtypes_and_rows_together():
    """Dict features of several dtypes, dict labels and sample weights: every leaf gathered by the same rows."""
    n = 24
    rows = np.arange(n)
    features = {'ids': (rows[:, None] * 1000 + np.arange(3)).astype(np.int32),  # above 255: nothing truncated
                'values': rows[:, None].astype(np.float64) / 7, 'name': np.array([f'row{i}' for i in rows])}
    labels = {'kind': rows.astype(np.int64), 'score': rows.astype(np.float32) / 2}
    examples = tf.data.Dataset.from_tensor_slices((features, labels, rows.astype(np.float32)))
    batches = data.TrainBatches(examples, n, 5, seed=2)
    in_graph = tf.function(batches)
    for step, streamed in zip(range(9), batches.dataset()):
        batch = in_graph(tf.constant(step, tf.int64))
        for got, want in zip(tf.nest.flatten(batch), tf.nest.flatten(streamed)):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got.numpy(), want.numpy())
        (got_features, got_labels, weights) = batch
        picked = got_labels['kind'].numpy()
        assert got_features['ids'].dtype == tf.int32 and got_features['values'].dtype == tf.float64
        np.testing.assert_array_equal(got_features['ids'].numpy(), features['ids'][picked])
        np.testing.assert_array_equal(got_features['values'].numpy(), features['values'][picked])
        assert [v.decode() for v in got_features['name'].numpy()] == [f'row{i}' for i in picked]
        np.testing.assert_array_equal(weights.numpy(), picked.astype(np.float32))
        np.testing.assert_array_equal(got_labels['score'].numpy(), picked / 2)


def test_augment_checks_what_it_transforms():
    images = tf.TensorSpec([6, 6, 1], tf.uint8)
    augment_lib.check(('flip', 'cutout'), 6, images)
    with pytest.raises(ValueError, match=r'^--cutout_size=7 is larger than the images \(6x6\)$'):
        augment_lib.check(('cutout',), 7, images)
    with pytest.raises(ValueError, match=r'^--augment=flip transforms images \[H, W, C\]; the features are'):
        augment_lib.check(('flip',), 8, {'ids': tf.TensorSpec([5], tf.int32)})
    assert augment_lib.transform((), 8) is None


# --- the same splits as stream sources (trainer.stream) ---------------------------------------

def test_a_prepared_tfds_split_streams_its_files_in_order(tmp_path):
    from trainer import stream
    with _mock_prepared('mnist', tmp_path, {'train': 60, 'test': 20}):
        source = tfds_data.source('mnist', 'train', str(tmp_path))
        assert isinstance(source, stream.Sequential) and not source.infinite
        assert source.sizes(1) == [60] and source.sizes(2) is None  # a shard's size: counted when needed
        loaded = list(tfds_data.load('mnist', 'train', str(tmp_path)).as_numpy_iterator())
        streamed = list(source.shard(0, 1).as_numpy_iterator())
    assert len(streamed) == len(loaded) > 0
    for (image, label), (expected_image, expected_label) in zip(streamed, loaded):
        np.testing.assert_array_equal(image, expected_image)
        assert label == expected_label


def test_debian_fashion_mnist_streams_by_index(tmp_path, debian_files):
    from trainer import stream
    source = tfds_data.source('fashion_mnist', 'test[:64]', str(tmp_path))
    assert isinstance(source, stream.RandomAccess) and source.num_examples == 64
    images, labels = fashion_mnist.read('test')
    read = source.read(tf.constant([63, 0, 7], tf.int64))
    np.testing.assert_array_equal(read[0].numpy(), images[[63, 0, 7]])
    np.testing.assert_array_equal(read[1].numpy(), labels[[63, 0, 7]])
    assert source.example_bytes == 28 * 28 + 8
