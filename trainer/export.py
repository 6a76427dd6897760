"""SavedModel export: a `serving_default` signature from the model's own inputs to its outputs.

The inputs are the training features' structure and dtypes with a batch dimension: named by their dict keys
(nested: joined by `_`), by the names given to the functional model's `keras.Input`s, or `inputs` /
`input_<i>`. The outputs are the model's: `outputs` for one tensor, else by their dict keys or the model's
output names (`output_<i>` otherwise), unless `outputs(y_pred)` maps them to a dict first (the built-in
classifiers: `probabilities`).
"""
import os
import re
import shutil

import keras
import tensorflow as tf


# Names Keras gives inputs nobody named; they are numbered per process, so no signature uses them.
_AUTOMATIC = re.compile(r'(keras_tensor|input_layer)(_\d+)?$')


def _names(count, model_names, single, prefix):
    names = [n.split(':')[0] for n in model_names or ()]
    if (len(names) == count and len(set(names)) == count and all(n.isidentifier() for n in names)
            and not any(_AUTOMATIC.match(n) for n in names)):
        return names
    return [single] if count == 1 else [f'{prefix}_{i}' for i in range(count)]


def _input_names(model, features):
    if isinstance(features, dict):
        # Every leaf by its path of keys and positions ('pixels', 'text_ids', 'pair_0'), in tf.nest's order.
        return ['_'.join(str(key) for key in path) for path, _ in keras.tree.flatten_with_path(features)]
    model_inputs = getattr(model, 'inputs', None) or ()
    return _names(len(tf.nest.flatten(features)), [t.name for t in model_inputs], 'inputs', 'input')


def _output_dict(model, y_pred):
    if isinstance(y_pred, dict):
        return dict(y_pred)
    flat = tf.nest.flatten(y_pred)
    if len(flat) == 1:
        return {'outputs': flat[0]}
    return dict(zip(_names(len(flat), getattr(model, 'output_names', None), 'outputs', 'output'), flat))


class _Serving(tf.Module):
    def __init__(self, model, features, outputs):
        super().__init__()
        self.model = model
        names = _input_names(model, features)
        specs = [tf.TensorSpec([None, *spec.shape], spec.dtype, name=name)
                 for spec, name in zip(tf.nest.flatten(features), names)]

        # A closure, not attributes: tf.Module would wrap a dict of specs into a trackable dict, which the
        # model would then be called with.
        def serve(*flat):
            y_pred = model(tf.nest.pack_sequence_as(features, list(flat)), training=False)
            return outputs(y_pred) if outputs else _output_dict(model, y_pred)
        self.serve = tf.function(serve, input_signature=specs)


def trace(model, features, outputs=None):
    """Traces the serving signature (what `save` exports), so a model that cannot be exported fails first."""
    _Serving(model, features, outputs).serve.get_concrete_function()


def save(model, features, path, outputs=None):
    """Writes the SavedModel to `path`, replacing an older export only once the new one is complete.

    features: the element spec of one example's features (any nest of tf.TensorSpec); outputs: None, or a
    function from the model's outputs to a dict of tensors. Load it with
    `tf.saved_model.load(path).signatures['serving_default'](**named inputs)`.
    """
    module = _Serving(model, features, outputs)
    partial, old = path + '.partial', path + '.old'
    for leftover in (partial, old):
        shutil.rmtree(leftover, ignore_errors=True)
    tf.saved_model.save(module, partial, signatures={'serving_default': module.serve})
    if os.path.exists(path):
        os.rename(path, old)
    os.rename(partial, path)
    shutil.rmtree(old, ignore_errors=True)
