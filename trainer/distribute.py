"""The tf.distribute strategy the run uses.

Everything holding variables is created under `strategy.scope()`, steps run through `strategy.run`, losses
are averaged over the global batch and metrics summed across replicas, so other strategies
(MirroredStrategy, MultiWorkerMirroredStrategy) plug in here without changes to the loop.
"""
import tensorflow as tf


def create():
    """TensorFlow's default strategy: one replica, ops placed by TensorFlow (a GPU when there is one).

    It also accepts a model built outside any scope, which the Python API allows on one device.
    """
    return tf.distribute.get_strategy()


def has_gpu():
    """Whether a GPU is visible (picks float16 over bfloat16 for mixed precision)."""
    return bool(tf.config.list_physical_devices('GPU'))
