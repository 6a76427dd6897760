"""Trains one of the user tasks of tests/test_tasks.py with trainer.train, in a process of its own (no tests here).

`python tests/task_scenario.py TASK MODEL_DIR [--strategy=S] [--cpu_devices=N] [--schedule=keras|callable]`:
the strategy (and TF_CONFIG for multi_worker) must be set when TensorFlow starts, hence a process per run.
Prints `done` at the end; a SIGTERM ends it with trainer.faults.Interrupted's exit status and message.
"""
import argparse
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import trainer  # noqa: E402
from trainer import faults  # noqa: E402


def regression_data(count=256, seed=0):
    """Ten float features, a float target that is a noisy linear function of them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, 10)).astype('float32')
    y = (x @ rng.normal(size=10) + 0.1 * rng.normal(size=count)).astype('float32')
    return tf.data.Dataset.from_tensor_slices((x, y))


def regression_model(spec):
    """A small MLP with an L2 regularizer (its loss must be counted once, on any number of replicas)."""
    model = keras.Sequential([keras.Input(spec[0].shape), keras.layers.Dense(16, activation='relu',
                              kernel_regularizer=keras.regularizers.L2(1e-2)), keras.layers.Dense(1)])
    model.compile(loss='mse', metrics=['mae'])
    return model


def two_input_data(count=192, seed=1):
    """Dict features (float and int64), dict labels (regression and 3 classes), per-example weights."""
    rng = np.random.default_rng(seed)
    features = {'numbers': rng.normal(size=(count, 4)).astype('float32'),
                'category': rng.integers(0, 3, size=(count, 1)).astype('int64')}
    labels = {'value': (features['numbers'].sum(1, keepdims=True)).astype('float32'),
              'kind': features['category'][:, 0]}
    weights = rng.uniform(0.5, 1.5, size=count).astype('float32')
    return tf.data.Dataset.from_tensor_slices((features, labels, weights))


def two_input_model(spec):
    numbers = keras.Input(spec[0]['numbers'].shape, name='numbers')
    category = keras.Input(spec[0]['category'].shape, dtype='int64', name='category')
    embedded = keras.layers.Flatten()(keras.layers.Embedding(3, 2)(category))
    hidden = keras.layers.Dense(8, activation='relu')(keras.layers.Concatenate()([numbers, embedded]))
    model = keras.Model({'numbers': numbers, 'category': category},
                        {'value': keras.layers.Dense(1, name='value')(hidden),
                         'kind': keras.layers.Dense(3, name='kind')(hidden)})
    model.compile(loss={'value': 'mse', 'kind': keras.losses.SparseCategoricalCrossentropy(from_logits=True)},
                  metrics={'kind': ['accuracy']})
    return model


class Quantile(keras.Model):
    """The README's compute_loss override: the pinball loss of the 90th percentile, its replica's share."""

    def __init__(self):
        super().__init__()
        self.hidden, self.out = keras.layers.Dense(16, activation='relu'), keras.layers.Dense(1)

    def call(self, x):
        return self.out(self.hidden(x))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        error = y[:, None] - y_pred
        return tf.nn.compute_average_loss(tf.maximum(0.9 * error, -0.1 * error)[:, 0])


def quantile_model(spec):
    model = Quantile()
    model.compile()
    return model


TASKS = {'regression': (regression_data, regression_model), 'two_inputs': (two_input_data, two_input_model),
         'quantile': (regression_data, quantile_model)}


def decaying(step):
    """A plain function of the step as a schedule."""
    return 0.02 * tf.pow(0.9, tf.cast(step, tf.float32) / 10.0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('task', choices=sorted(TASKS))
    parser.add_argument('model_dir')
    parser.add_argument('--strategy', default='auto')
    parser.add_argument('--cpu_devices', type=int)
    parser.add_argument('--schedule', choices=('keras', 'callable'), default='keras')
    parser.add_argument('--train_steps', type=int, default=40)
    args = parser.parse_args()
    make_data, make_model = TASKS[args.task]
    # Devices (and a cluster's collectives) are set when TensorFlow starts: the strategy first, then the data.
    strategy = trainer.distribute.create(args.strategy, cpu_devices=args.cpu_devices)
    examples = make_data()
    schedule = (keras.optimizers.schedules.ExponentialDecay(0.02, decay_steps=10, decay_rate=0.9)
                if args.schedule == 'keras' else decaying)
    try:
        trainer.train(make_model, examples, examples.take(64), model_dir=args.model_dir, schedule=schedule,
                      optimizer=keras.optimizers.SGD(momentum=0.9), batch_size=16, train_steps=args.train_steps,
                      steps_per_loop=3, checkpoint_steps=9, seed=5, deterministic=True, interactive=False,
                      strategy=strategy)
    except faults.Interrupted as e:
        print(e)
        sys.exit(e.exit_status)
    print('done')


if __name__ == '__main__':
    main()
