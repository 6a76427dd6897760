"""The fused optimizers and Keras's own side by side under a strategy: `python tests/optimizer_scenario.py CPU_DEVICES`.

Each fused optimizer and its Keras twin (same hyperparameters, all exact in float32) take the same six steps
inside `strategy.run`, each replica with its own gradients, all-reduced by the optimizer. Prints JSON: the
number of replicas and, per optimizer, the largest difference over every variable and slot in units of the
float32 spacing at that tensor's largest magnitude. A script, not a test: the CPU can only be split into
replicas before TensorFlow starts.
"""
import json
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from trainer import distribute, optimizers  # noqa: E402

SHAPES = ((3, 4), (4,), (2, 2, 1, 3))
STEPS = 6
# Hyperparameters exact in float32, so that 1 - beta is the same number in Keras's Python and in the kernel.
PAIRS = {
    'adam': (optimizers.FusedAdam, keras.optimizers.Adam, {'beta_1': 0.875, 'beta_2': 1 - 2 ** -10}),
    'adamw': (optimizers.FusedAdamW, keras.optimizers.AdamW,
              {'beta_1': 0.875, 'beta_2': 1 - 2 ** -10, 'weight_decay': 0.125}),
    'sgd': (optimizers.FusedSGD, keras.optimizers.SGD, {'momentum': 0.875}),
    'rmsprop': (optimizers.FusedRMSprop, keras.optimizers.RMSprop, {'rho': 0.875, 'momentum': 0.5}),
}


def run(strategy, optimizer_class, hyperparameters, gradients):
    with strategy.scope():
        rng = np.random.default_rng(0)
        variables = [tf.Variable(rng.normal(size=shape).astype(np.float32)) for shape in SHAPES]
        count = tf.Variable(0.0, trainable=False)
        optimizer = optimizer_class(lambda: 0.01 / (1.0 + count), **hyperparameters)
        optimizer.build(variables)

    @tf.function
    def step(per_replica):
        strategy.run(lambda grads: optimizer.apply(grads, variables), args=(per_replica,))
        count.assign_add(1.0)

    for grads in gradients:
        step(strategy.experimental_distribute_values_from_function(
            lambda context: [tf.constant(g[context.replica_id_in_sync_group]) for g in grads]))
    return [v.numpy() for v in variables + [v.value for v in optimizer.variables]]


def spacings(ours, theirs):
    """The largest |ours - theirs| over all tensors, in float32 spacings at each tensor's largest magnitude."""
    return max(float(np.max(np.abs(a - b)) / np.spacing(np.float32(np.max(np.abs(b))))) for a, b in zip(ours, theirs))


def main(cpu_devices):
    strategy = distribute.create('auto', cpu_devices=cpu_devices)
    replicas = strategy.num_replicas_in_sync
    rng = np.random.default_rng(1)
    gradients = [[rng.normal(size=(replicas,) + shape).astype(np.float32) for shape in SHAPES]
                 for _ in range(STEPS)]
    result = {'replicas': replicas}
    for name, (fused, keras_class, hyperparameters) in PAIRS.items():
        result[name] = spacings(run(strategy, fused, hyperparameters, gradients),
                                run(strategy, keras_class, hyperparameters, gradients))
    print(json.dumps(result))


if __name__ == '__main__':
    main(int(sys.argv[1]))
