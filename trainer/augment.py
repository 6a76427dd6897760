"""Augmentations of the built-in image task, as a transform of the training batch keyed by (seed, step).

Every random draw is a stateless op keyed by the step's seed (flip) or a fold-in of it (cutout), never a Keras
preprocessing layer: those draw from a stateful SeedGenerator, which a checkpoint of model, optimizer and
step would not restore. So augmented batches are a function of the step too, and resumes stay exact.
"""
import tensorflow as tf

NAMES = ('flip', 'cutout')


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


def check(names, cutout_size, features):
    """Raises ValueError (one line) unless `features` (a tf.TensorSpec of one example) are images the
    augmentations `names` can transform."""
    if not names:
        return
    if not (isinstance(features, tf.TensorSpec) and features.shape.rank == 3):
        raise ValueError(f'--augment={",".join(names)} transforms images [H, W, C]; the features are {features}')
    if 'cutout' in names and cutout_size > min(features.shape[:2]):
        raise ValueError(f'--cutout_size={cutout_size} is larger than the images '
                         f'({features.shape[0]}x{features.shape[1]})')


def transform(names, cutout_size):
    """The batch transform `(batch, seed [2] int64) -> batch` of `names` (applied in NAMES' order), or None.

    batch is (images [B, H, W, C], labels, ...), images as stored; only the images change, in their dtype.
    'flip' mirrors left-right with probability 1/2; 'cutout' zeros a cutout_size-pixel square with
    probability 1/2.
    """
    names = tuple(name for name in NAMES if name in names)
    if not names:
        return None

    def apply(batch, seed):
        images = batch[0]
        if 'flip' in names:
            images = tf.image.stateless_random_flip_left_right(images, seed)
        if 'cutout' in names:
            images = _cutout(images, cutout_size, tf.random.experimental.stateless_fold_in(seed, 1))
        return (images, *batch[1:])
    return apply
