"""Learning-rate schedules that are pure functions of the global step.

>>> import schedules
>>> lr = schedules.get("cosine_restarts", initial_lr=1e-3, min_lr=1e-5, warmup_steps=100, cycle_steps=1000)
>>> round(float(lr(1000)), 8)  # the first step of the second cycle: its warmup start
1e-05
"""

from schedules.base import MAX_STEP, Schedule
from schedules.combinators import Sequence, Warmup, sequence, warmup
from schedules.constant import Constant, PiecewiseConstant, PiecewiseInterpolate
from schedules.cosine import Cosine, OneCycle, WarmupStableDecay
from schedules.decay import Exponential, InverseTime, Polynomial, PowerDecay
from schedules.registry import get, names, parameters
from schedules.restarts import CosineRestarts, Cyclic, PolynomialRestarts
from schedules.validation import ParameterError

__all__ = [
    "MAX_STEP", "Schedule", "Sequence", "Warmup", "sequence", "warmup", "Constant", "PiecewiseConstant", "Cosine",
    "OneCycle", "WarmupStableDecay", "Exponential", "InverseTime", "Polynomial", "get", "names", "parameters",
    "CosineRestarts", "ParameterError", "PiecewiseInterpolate", "PowerDecay", "Cyclic", "PolynomialRestarts",
]
