"""The user's task: a Keras model with the loss and metrics of `model.compile`, checked before anything is written.

The loop knows only Keras's hooks: `model.compute_loss(x, y, y_pred, sample_weight, training)` and
`model.compute_metrics(...)`, so a model that overrides either trains unchanged. Here the model is compiled
once more with the run's optimizer (keeping its own loss, loss weights and metrics unless the `loss=` /
`metrics=` keywords replace them), and tried on two examples of the data, which builds the metrics and
turns a loss that does not fit the labels into one line instead of a traceback after files are written.
"""
import inspect

import keras
import numpy as np
import tensorflow as tf

from trainer.config import ConfigError
from trainer.data import one_line

# Keras losses that read integer class ids: Keras casts float labels to integers for them, silently.
_CLASS_ID_LOSSES = ('sparse_categorical_crossentropy', 'SparseCategoricalCrossentropy',
                    'sparse_categorical_focal_crossentropy', 'SparseCategoricalFocalCrossentropy')


def compile_for_run(model, optimizer, loss=None, metrics=None):
    """Compiles `model` with `optimizer`; loss/metrics (if not None) replace those it was compiled with.

    Returns the (loss, metrics) it is compiled with.
    """
    # Keras keeps the objects compile() was given only in this private record (get_compile_config serializes
    # them, which plain functions do not survive).
    compiled = getattr(model, '_compile_config', None)
    given = dict(compiled.config) if compiled is not None and model.compiled else {}
    loss = loss if loss is not None else given.get('loss')
    metrics = metrics if metrics is not None else given.get('metrics')
    model.compile(optimizer=optimizer, loss=loss, loss_weights=given.get('loss_weights'), metrics=metrics,
                  weighted_metrics=given.get('weighted_metrics'))
    return loss, metrics


def check(model, examples, element_spec, strategy):
    """Runs the model, its loss and metrics on the first two examples; raises ConfigError (one line).

    In the cross-replica context of the caller's strategy scope it builds the model and Keras's compiled loss
    and metrics (their variables belong to that scope); then it computes the loss as the loop does, in a replica
    context (an override may need one: tf.nn.compute_average_loss does). The metrics are reset after.
    """
    try:
        first = next(iter(examples.batch(2)))
    except tf.errors.OpError as e:  # e.g. a file whose header was read up front but whose contents do not decode
        raise ConfigError(f'the first two training examples cannot be read: {type(e).__name__}: '
                          f'{one_line(e)}') from None
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(first)
    _check_label_dtypes(model, element_spec[1])
    try:
        y_pred = model(x, training=False)
        if getattr(model, 'loss', None) is not None:
            keras.Model.compute_loss(model, x, y, y_pred, sample_weight, training=False)
        model.compute_metrics(x, y, y_pred, sample_weight)
        loss = strategy.experimental_local_results(tf.function(lambda: strategy.run(
            lambda: compute_loss(model, x, y, model(x, training=False), sample_weight, training=False)))())[0]
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001: whatever Keras or the user's code raises, said in one line
        raise ConfigError(f'the model, its loss or its metrics do not fit the data: {type(e).__name__}: '
                          f'{one_line(e)}') from None
    if not tf.as_dtype(loss.dtype).is_floating or loss.shape.rank not in (0, None):
        raise ConfigError(f'the loss must be a float scalar, got {loss.dtype.name}{loss.shape.as_list()}')
    model.reset_metrics()


def compute_loss(model, x, y, y_pred, sample_weight, training):
    """Keras's compute_loss, also for overrides written before it took `training` (Keras < 3.3)."""
    if 'training' in inspect.signature(model.compute_loss).parameters:
        return model.compute_loss(x, y, y_pred, sample_weight, training=training)
    return model.compute_loss(x, y, y_pred, sample_weight)


def _check_label_dtypes(model, labels):
    losses = getattr(model, 'loss', None)
    pairs = []
    if isinstance(losses, dict) and isinstance(labels, dict):
        pairs = [(name, losses[name], labels[name]) for name in losses if name in labels]
    elif not isinstance(losses, (dict, list, tuple)) and isinstance(labels, tf.TensorSpec):
        pairs = [('', losses, labels)]
    for name, loss, spec in pairs:
        loss_name = loss if isinstance(loss, str) else getattr(loss, '__name__', type(loss).__name__)
        if loss_name in _CLASS_ID_LOSSES and not spec.dtype.is_integer:
            where = f'labels[{name!r}]' if name else 'the labels'
            raise ConfigError(f'{where} are {spec.dtype.name}, but the loss {loss_name} takes integer class ids '
                              '(Keras would truncate them); give int32 or int64 labels')


def describe(value):
    """A JSON-able description of a loss, metric, schedule or optimizer, for the run's recorded identity.

    Objects by their class (Keras's registered name: 'SGD', 'package>Name'; else module.qualname) and config,
    functions by module.qualname; `name` entries are left out (Keras numbers unnamed objects per process:
    sgd, sgd_1, ...), and nothing that prints a memory address gets in.
    """
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, dict):
        return {str(k): describe(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0])) if k != 'name'}
    if isinstance(value, (list, tuple)):
        return [describe(v) for v in value]
    if inspect.isfunction(value) or inspect.isbuiltin(value) or inspect.ismethod(value):
        return f'{value.__module__}.{value.__qualname__}'
    kind = class_name(type(value))
    try:
        config = value.get_config()
    except Exception:  # noqa: BLE001: no config (NotImplementedError, AttributeError, ...): the class alone
        return kind
    return {'class': kind, 'config': describe(config)}


def class_name(cls):
    """Keras's registered name of a Keras or registered class, else module.qualname."""
    if cls.__module__.startswith('keras.'):
        return keras.saving.get_registered_name(cls)
    return f'{cls.__module__}.{cls.__qualname__}'


def directions(model):
    """{metric name: 'up' or 'down'} for the metrics that say which way is better (as Keras's callbacks read
    it), and for every loss."""
    found, pending = {}, list(model.metrics)
    while pending:
        metric = pending.pop()
        inner = getattr(metric, 'metrics', None)
        if isinstance(inner, (list, tuple)) and inner:
            pending.extend(inner)
        elif metric.name == 'loss' or metric.name.endswith('_loss'):
            found[metric.name] = 'down'
        elif getattr(metric, '_direction', None) in ('up', 'down'):
            found[metric.name] = metric._direction  # noqa: SLF001: the attribute Keras's callbacks read
    found['loss'] = 'down'
    return found
