"""The built-in image-classification task: its models by name, built from a tfds DatasetInfo, and compiled.

Every model takes images as stored (uint8 0..255; its input layer casts them to float inside the step) and
returns logits in float32; it is compiled with sparse categorical cross-entropy on the logits and accuracy,
and its export adds the softmax (`serving_outputs`). To add a model, write a function `(info) -> keras.Model`
returning logits and register it in `_MODELS`.
"""
import keras
import tensorflow as tf


def _inputs(info):
    images = keras.Input(shape=info.image_shape, name='images')
    return images, keras.layers.Rescaling(1.0 / 255)(images)


def _logits(x, info):
    # float32 even under mixed precision, so the softmax and the loss are computed in full precision.
    return keras.layers.Dense(info.num_classes, dtype='float32', name='logits')(x)


def cnn(info):
    """The seed's CNN: Conv 32 -> pool -> Conv 64 -> pool -> Dense 128 -> Dense classes."""
    images, x = _inputs(info)
    x = keras.layers.Conv2D(32, 3, padding='same', activation='relu')(x)
    x = keras.layers.MaxPool2D(2, padding='same')(x)
    x = keras.layers.Conv2D(64, 3, padding='same', activation='relu')(x)
    x = keras.layers.MaxPool2D(2, padding='same')(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(128)(x)  # linear, as in the seed
    return keras.Model(images, _logits(x, info), name='cnn')


def mlp(info):
    """Flatten -> Dense 256 relu -> Dense 128 relu -> Dense classes."""
    images, x = _inputs(info)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(256, activation='relu')(x)
    x = keras.layers.Dense(128, activation='relu')(x)
    return keras.Model(images, _logits(x, info), name='mlp')


_MODELS = {'cnn': cnn, 'mlp': mlp}


def names():
    """The names --model accepts."""
    return list(_MODELS)


def compile_classifier(model):
    """Compiles a logits classifier the built-in task's way (the trainer compiles it again with its optimizer)."""
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=['accuracy'])
    return model


def build(name, info):
    """A new compiled model `name` for the dataset described by `info` (a trainer.tfds_data.DatasetInfo)."""
    return compile_classifier(_MODELS[name](info))


def serving_outputs(class_names):
    """What the built-in task's export returns: class probabilities and the most probable class's name."""
    names = tf.constant(list(class_names))

    def outputs(logits):
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32))
        return {'probabilities': probabilities, 'class_name': tf.gather(names, tf.argmax(probabilities, axis=1))}
    return outputs
