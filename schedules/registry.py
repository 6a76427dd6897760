"""Schedules by name: the names the trainer's --schedule flag and the plot CLI accept."""

import inspect

from schedules import constant, cosine, decay, restarts, validation

_SCHEDULES = {
    "constant": constant.Constant,
    "piecewise_constant": constant.PiecewiseConstant,
    "exponential": decay.Exponential,
    "inverse_time": decay.InverseTime,
    "polynomial": decay.Polynomial,
    "cosine": cosine.Cosine,
    "cosine_restarts": restarts.CosineRestarts,
    "one_cycle": cosine.OneCycle,
    "warmup_stable_decay": cosine.WarmupStableDecay,
    "piecewise_interpolate": constant.PiecewiseInterpolate,
    "power_decay": decay.PowerDecay,
    "cyclic": restarts.Cyclic,
    "polynomial_restarts": restarts.PolynomialRestarts,
}


def names():
    """The registered schedule names."""
    return list(_SCHEDULES)


def parameters(name):
    """{parameter: default} of schedule `name`, in signature order.

    Required parameters map to `inspect.Parameter.empty`.
    """
    signature = inspect.signature(_class(name).__init__)
    return {p.name: p.default for p in list(signature.parameters.values())[1:]}


def get(name, **params):
    """Builds schedule `name` from keyword parameters, checking every one.

    >>> get("cosine", initial_lr=1e-3, min_lr=0.0, warmup_steps=100, total_steps=1000)
    Cosine(initial_lr=0.001, min_lr=0.0, warmup_steps=100, total_steps=1000)
    """
    expected = parameters(name)
    for param in params:
        if param not in expected:
            raise validation.ParameterError(param, f"one of the parameters of {name}: {', '.join(expected)}",
                                            params[param])
    missing = [p for p, default in expected.items() if default is inspect.Parameter.empty and p not in params]
    if missing:
        raise validation.ParameterError(missing[0], f"set for schedule {name}", None)
    return _SCHEDULES[name](**params)


def _class(name):
    if name not in _SCHEDULES:
        raise validation.ParameterError("schedule", "one of " + ", ".join(_SCHEDULES), name)
    return _SCHEDULES[name]
