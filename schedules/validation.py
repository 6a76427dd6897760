"""Up-front checks of schedule parameters: each failure is one ValueError naming the parameter."""

import math
import numbers


class ParameterError(ValueError):
    """A schedule parameter outside its allowed values.

    `parameter` holds the parameter's name, so a caller (flags, a CLI) can name its own input.
    """

    def __init__(self, parameter, allowed, value):
        super().__init__(f"{parameter} must be {allowed}, got {value!r}")
        self.parameter = parameter
        self.allowed = allowed


def real(parameter, value, low=None, high=None, low_open=False, high_open=False):
    """Returns `value` as a float after checking it is a finite number in the interval."""
    allowed = f"a finite number {_interval(low, high, low_open, high_open)}".rstrip()
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ParameterError(parameter, allowed, value)
    value = float(value)
    if ((low is not None and (value < low or (low_open and value == low))) or
            (high is not None and (value > high or (high_open and value == high)))):
        raise ParameterError(parameter, allowed, value)
    return value


def whole(parameter, value, low=0, high=None):
    """Returns `value` as an int after checking it is a whole number in [low, high]."""
    allowed = f"a whole number {_interval(low, high, False, False)}".rstrip()
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
            or value != int(value)):
        raise ParameterError(parameter, allowed, value)
    value = int(value)
    if value < low or (high is not None and value > high):
        raise ParameterError(parameter, allowed, value)
    return value


def rates(initial_lr, min_lr):
    """Checks the peak and floor most schedules share: initial_lr > 0 and 0 <= min_lr <= initial_lr."""
    initial_lr = real("initial_lr", initial_lr, low=0.0, low_open=True)
    if isinstance(min_lr, numbers.Real) and not isinstance(min_lr, bool) and min_lr > initial_lr:
        raise ParameterError("min_lr", f"at most initial_lr ({initial_lr:g})", min_lr)
    return initial_lr, real("min_lr", min_lr, low=0.0)


def boolean(parameter, value):
    """Returns `value` after checking it is True or False (a string such as "False" is refused, not truthy)."""
    if value is not True and value is not False:
        raise ParameterError(parameter, "True or False", value)
    return value


def choice(parameter, value, allowed):
    if value not in allowed:
        raise ParameterError(parameter, "one of " + ", ".join(map(repr, allowed)), value)
    return value


def _interval(low, high, low_open, high_open):
    if low is None and high is None:
        return ""
    if high is None:
        return f"{'>' if low_open else '>='} {low:g}"
    if low is None:
        return f"{'<' if high_open else '<='} {high:g}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
