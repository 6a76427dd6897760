"""SavedModel export: a `serving_default` signature from raw uint8 images to class probabilities."""
import os
import shutil

import tensorflow as tf


class _Serving(tf.Module):
    def __init__(self, model, image_shape):
        super().__init__()
        self.model = model
        self.serve = tf.function(
            self._serve, input_signature=[tf.TensorSpec([None, *image_shape], tf.uint8, name='images')])

    def _serve(self, images):
        logits = self.model(tf.cast(images, tf.float32), training=False)
        return {'probabilities': tf.nn.softmax(tf.cast(logits, tf.float32))}


def save(model, image_shape, path):
    """Writes the SavedModel to `path`, replacing an older export only once the new one is complete.

    Load it with `tf.saved_model.load(path).signatures['serving_default'](images=uint8 [N, H, W, C])`.
    """
    module = _Serving(model, image_shape)
    partial, old = path + '.partial', path + '.old'
    for leftover in (partial, old):
        shutil.rmtree(leftover, ignore_errors=True)
    tf.saved_model.save(module, partial, signatures={'serving_default': module.serve})
    if os.path.exists(path):
        os.rename(path, old)
    os.rename(partial, path)
    shutil.rmtree(old, ignore_errors=True)
