"""stepwise's trainer: `python -m trainer.main`, or `trainer.train(...)` from Python (see trainer.api)."""


def __getattr__(name):
    # Lazy, so `python -m trainer.main` can configure TensorFlow's logging before TensorFlow is imported.
    if name == 'train':
        from trainer.api import train
        return train
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
