"""A non-finite step in the compiled loop, run as `python tests/nonfinite_scenario.py MODE CPU_DEVICES`.

Six steps (one epoch) of a small dense model at global batch 4; the first example of step 3's batch (on the
first replica when there are two) is NaN. Prints JSON: what the loop did at that step. A script, not a test: the CPU can
only be split into replicas before TensorFlow starts, so test_nonfinite.py runs it in a fresh process.
"""
import json
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from trainer import data, distribute, loop, optimizers, task  # noqa: E402

BATCH, STEPS, BAD_STEP = 4, 6, 3


def _state(model, optimizer):
    return [v.numpy().tolist() for v in model.trainable_variables + optimizer.variables]


def main(mode, cpu_devices):
    strategy = distribute.create('auto', cpu_devices=cpu_devices)
    rng = np.random.default_rng(0)
    images = rng.normal(size=(BATCH * STEPS, 3)).astype(np.float32)
    labels = (images[:, 1] > 0).astype(np.int32)
    order = data.TrainBatches(tf.data.Dataset.from_tensor_slices((images, np.arange(BATCH * STEPS))),
                              BATCH * STEPS, BATCH, seed=0)
    images[int(order(tf.constant(BAD_STEP, tf.int64))[1][0]), 0] = np.nan
    examples = tf.data.Dataset.from_tensor_slices((images, labels))
    batches = data.TrainBatches(examples, BATCH * STEPS, BATCH, seed=0)
    with strategy.scope():
        keras.utils.set_random_seed(1)
        # tanh, not relu: oneDNN's fused matmul + relu maps NaN to 0, and the bad step's loss would be finite
        # (its gradient is not: tests/test_trainer_loop.py covers that case under stop).
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation='tanh'), keras.layers.Dense(2)])
        step = tf.Variable(0, dtype=tf.int64, trainable=False)
        optimizer = optimizers.build('adam', lambda: 0.01)
        task.compile_for_run(model, optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                             metrics=['accuracy'])
        task.check(model, examples, examples.element_spec, strategy)
        optimizer.build(model.trainable_variables)
    trainer_loop = loop.Loop(model, optimizer, strategy, step, tf.summary.create_noop_writer(), batches,
                             on_nonfinite=mode)
    trainer_loop.train(tf.constant(BAD_STEP, tf.int64))
    before = _state(model, optimizer)
    means, _ = trainer_loop.train(tf.constant(STEPS - BAD_STEP, tf.int64))
    loss = means['loss']
    result = {'replicas': strategy.num_replicas_in_sync, 'global_step': int(step.numpy()),
              'iterations': int(optimizer.iterations.numpy()), 'counts': trainer_loop.guard.counts(),
              'mean_loss': float(loss), 'before_bad': before, 'after_bad': None}
    if mode == 'skip':
        # The bad step again, alone, from the state before it: what it changes (nothing, if it is skipped).
        for variable, value in zip(model.trainable_variables + optimizer.variables, before):
            variable.assign(np.asarray(value, dtype=variable.dtype))
        step.assign(BAD_STEP)
        trainer_loop.train(tf.constant(1, tf.int64))
        result['after_bad'] = _state(model, optimizer)
    print(json.dumps(result))


if __name__ == '__main__':
    main(sys.argv[1], int(sys.argv[2]))
