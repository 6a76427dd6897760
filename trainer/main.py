"""`python -m trainer.main [--flagfile=configs/X.flags] [--flag=value ...]`: train, evaluate, export.

Flags -> Config -> trainer.api.run. A bad flag value or combination ends with one line on stderr naming the
flag, exit status 2, before anything is written.
"""
import os
import sys

# TensorFlow's C++ start-up messages would bury the one-line errors; set before TensorFlow is imported.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from schedules import flags as schedule_flags  # noqa: E402
from trainer import api, data, faults  # noqa: E402
from trainer import config as config_lib  # noqa: E402
from trainer import flags as trainer_flags  # noqa: E402

FLAGS = flags.FLAGS
trainer_flags.define(FLAGS)
# --helpshort lists the trainer's flags and the schedule parameters.
flags.adopt_module_key_flags(trainer_flags)
flags.adopt_module_key_flags(schedule_flags)


def fail(message):
    print(f'error: {message}', file=sys.stderr)
    sys.exit(2)


def parse(argv):
    """absl flag parsing; a bad flag ends the process with one line."""
    try:
        return FLAGS(argv)
    except flags.Error as e:
        message = ' '.join(str(e).split())
        fail(message.replace('ERROR:: Unable to open flagfile', '--flagfile: cannot open'))


def quiet():
    """TensorFlow's INFO lines (saver, assets, ...) would drown the progress lines; warnings still show."""
    tf.get_logger().setLevel('WARNING')
    logging.set_verbosity(logging.WARNING)


def main(argv):
    quiet()
    if len(argv) > 1:
        fail(f'unexpected arguments: {" ".join(argv[1:])} (flags are --name=value)')
    try:
        api.run(trainer_flags.to_config(FLAGS))
    except (config_lib.ConfigError, data.DataError) as e:
        fail(' '.join(str(e).split()))
    except faults.Stop as e:  # a run that had started: stopped on a signal, a non-finite loss, a failed write
        print(f'error: {e}' if e.error else str(e), file=sys.stderr)
        sys.exit(e.exit_status)


if __name__ == '__main__':
    app.run(main, flags_parser=parse)
