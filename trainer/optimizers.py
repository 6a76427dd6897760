"""Optimizers by name, driven by a learning rate that is a function of the trainer's global step."""
import keras

_NAMES = ('adam', 'adamw', 'sgd', 'rmsprop')


def names():
    """The names --optimizer accepts."""
    return list(_NAMES)


def build(name, learning_rate, momentum=0.9, weight_decay=None, loss_scale=False, ema_momentum=None):
    """A Keras optimizer; `learning_rate` is a callable without arguments (the rate of the current step).

    momentum: sgd's momentum and rmsprop's momentum (adam and adamw ignore it).
    weight_decay: decoupled weight decay (None: adamw's default 0.004, off for the others).
    loss_scale: wrap in a LossScaleOptimizer (float16 mixed precision).
    ema_momentum: keep an exponential moving average of the weights (Keras's `use_ema`), which
        `finalize_variable_values` copies into the model; None: no average.
    """
    decay = weight_decay or None  # Keras takes None, not 0, for "no decay"
    ema = {'use_ema': ema_momentum is not None, 'ema_momentum': ema_momentum or 0.99}
    if name == 'adam':
        optimizer = keras.optimizers.Adam(learning_rate, weight_decay=decay, **ema)
    elif name == 'adamw':
        optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=0.004 if weight_decay is None else weight_decay,
                                           **ema)
    elif name == 'sgd':
        optimizer = keras.optimizers.SGD(learning_rate, momentum=momentum, weight_decay=decay, **ema)
    elif name == 'rmsprop':
        optimizer = keras.optimizers.RMSprop(learning_rate, momentum=momentum, weight_decay=decay, **ema)
    else:
        raise ValueError(f'--optimizer={name!r} is not one of: {", ".join(_NAMES)}')
    return keras.optimizers.LossScaleOptimizer(optimizer) if loss_scale else optimizer
