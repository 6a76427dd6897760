"""stepwise's trainer: `python -m trainer.main`, or `trainer.train(...)` / `trainer.find_lr(...)` from Python (see
trainer.api)."""
import importlib


def __getattr__(name):
    # Lazy, so `python -m trainer.main` can configure TensorFlow's logging before TensorFlow is imported.
    if name in ('train', 'find_lr'):  # the functions, not the modules of the same name (trainer.find_lr: the CLI)
        from trainer import api
        return getattr(api, name)
    try:
        return importlib.import_module(f'{__name__}.{name}')
    except ModuleNotFoundError:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}') from None
