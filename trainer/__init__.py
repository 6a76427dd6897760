"""stepwise's trainer: `python -m trainer.main`, or `trainer.train(...)` from Python (see trainer.api)."""
import importlib


def __getattr__(name):
    # Lazy, so `python -m trainer.main` can configure TensorFlow's logging before TensorFlow is imported.
    if name == 'train':
        from trainer.api import train
        return train
    try:
        return importlib.import_module(f'{__name__}.{name}')
    except ModuleNotFoundError:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}') from None
