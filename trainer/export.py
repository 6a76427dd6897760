"""SavedModel export: a `serving_default` signature from the model's own inputs to its outputs.

The inputs are the training features' structure and dtypes with a batch dimension: named by their dict keys,
by the functional model's input names, or `inputs` / `input_<i>`. The outputs are the model's, named by
their dict keys or the model's output names (`outputs` / `output_<i>` otherwise), unless `outputs(y_pred)`
maps them to a dict first (the built-in classifiers: `probabilities`).
"""
import os
import shutil

import tensorflow as tf


def _names(count, model_names, single, prefix):
    names = [n.split(':')[0] for n in model_names or ()]
    if len(names) == count and len(set(names)) == count and all(n.isidentifier() for n in names):
        return names
    return [single] if count == 1 else [f'{prefix}_{i}' for i in range(count)]


def _input_names(model, features):
    if isinstance(features, dict):
        return [str(k) for k in sorted(features)]  # tf.nest's order
    model_inputs = getattr(model, 'inputs', None) or ()
    return _names(len(tf.nest.flatten(features)), [t.name for t in model_inputs], 'inputs', 'input')


def _output_dict(model, y_pred):
    if isinstance(y_pred, dict):
        return dict(y_pred)
    flat = tf.nest.flatten(y_pred)
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
