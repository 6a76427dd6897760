"""Trains on TFRecord files streamed with trainer.train, in a process of its own (no tests here).

`python tests/stream_scenario.py MODEL_DIR DATA_DIR [--strategy=S] [--cpu_devices=N] [--setting=NAME=JSON ...]`:
a function of the input context reads the files part-<i>.tfrecord of DATA_DIR that are its shard's
(i % shards == shard), their sizes stated from DATA_DIR/manifest.json (as a user who knows their files would),
so a worker that holds only its shard's files trains. Prints `peak_rss_kb <n>` (resource.getrusage) and
`done` at the end.
"""
import argparse
import json
import os
import resource
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import trainer  # noqa: E402
from trainer import faults  # noqa: E402


def write(data_dir, files, per_file, features, seed=0):
    """`files` TFRecord files of `per_file` examples: float32 [features], label 1 when their sum is positive;
    and manifest.json with the sizes (what a user knows of their files)."""
    import numpy as np
    rng = np.random.default_rng(seed)
    os.makedirs(data_dir, exist_ok=True)
    for index in range(files):
        with tf.io.TFRecordWriter(os.path.join(data_dir, f'part-{index}.tfrecord')) as writer:
            for _ in range(per_file):
                x = rng.normal(size=features).astype('float32')
                example = tf.train.Example(features=tf.train.Features(feature={
                    'x': tf.train.Feature(float_list=tf.train.FloatList(value=x)),
                    'y': tf.train.Feature(int64_list=tf.train.Int64List(value=[int(x.sum() > 0)]))}))
                writer.write(example.SerializeToString())
    with open(os.path.join(data_dir, 'manifest.json'), 'w') as f:
        json.dump({'files': files, 'per_file': per_file, 'features': features}, f)


def source(data_dir):
    with open(os.path.join(data_dir, 'manifest.json')) as f:
        manifest = json.load(f)
    spec = {'x': tf.io.FixedLenFeature([manifest['features']], tf.float32), 'y': tf.io.FixedLenFeature([], tf.int64)}

    def parse(record):
        example = tf.io.parse_single_example(record, spec)
        return example['x'], example['y']

    def train_data(context):
        mine = [os.path.join(data_dir, f'part-{i}.tfrecord') for i in range(manifest['files'])
                if i % context.num_input_pipelines == context.input_pipeline_id]
        # Reading the files in order (interleave with cycle 1): the shard's order is fixed.
        records = tf.data.Dataset.from_tensor_slices(mine).interleave(tf.data.TFRecordDataset, cycle_length=1)
        return records.map(parse, num_parallel_calls=tf.data.AUTOTUNE).apply(
            tf.data.experimental.assert_cardinality(len(mine) * manifest['per_file']))
    return train_data, manifest


def model(spec):
    net = keras.Sequential([keras.Input(spec[0].shape), keras.layers.Dense(8, activation='relu'),
                            keras.layers.Dense(2)])
    net.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=['accuracy'])
    return net


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('model_dir')
    parser.add_argument('data_dir')
    parser.add_argument('--strategy', default='auto')
    parser.add_argument('--cpu_devices', type=int, default=None)
    parser.add_argument('--setting', action='append', default=[], help='NAME=JSON value, a trainer.train setting')
    args = parser.parse_args()
    settings = {name: json.loads(value) for name, value in (s.split('=', 1) for s in args.setting)}
    train_data, _ = source(args.data_dir)
    if settings.pop('as_dataset', False):  # one dataset object, not a function: read whole, in memory or not
        train_data = train_data(tf.distribute.InputContext())
    try:
        trainer.train(model, train_data, model_dir=args.model_dir, strategy=args.strategy,
                      cpu_devices=args.cpu_devices, schedule='cosine', interactive=False, **settings)
    except faults.Interrupted as e:
        print(e, flush=True)
        sys.exit(e.exit_status)
    print('peak_rss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    print('done', flush=True)


if __name__ == '__main__':
    main()
