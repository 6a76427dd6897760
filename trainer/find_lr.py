"""`python -m trainer.find_lr [trainer.main's flags] [--min_lr=1e-7] [--max_lr=10] [--num_steps=100] [--out=DIR]`.

The learning-rate range test (trainer.range_test) with the run the same flags would train: prints the
suggested peak rate, the rule, and a `python -m trainer.main ... --initial_lr=<value>` line to paste; writes
per-step `learning_rate` and `loss` scalars and the figure (also a TensorBoard image) under --out. A bad flag
is one line with exit status 2; no suggestion (the loss never decreased) exits with status 1.
"""
import sys

from absl import app, flags

from trainer import api, faults
from trainer import config as config_lib
from trainer import data
from trainer import flags as trainer_flags
from trainer import main as trainer_main

FLAGS = flags.FLAGS
flags.DEFINE_integer('num_steps', 100, 'Steps of the range test (at least 20; 100 to 300 is usual).')
flags.DEFINE_string('out', 'runs/range_test', 'Folder for the range test\'s scalars and figure.')
# The range's ends are the schedule flags --min_lr and --max_lr, with the range test's own defaults.
DEFAULT_MIN_LR, DEFAULT_MAX_LR = 1e-7, 10.0
_OWN = ('--out', '--num_steps', '--min_lr', '--max_lr', '--initial_lr')


def paste_line(argv, rate):
    """The trainer.main command of these arguments (the range test's own left out) at the peak `rate`."""
    kept = [a for a in argv if not any(a == own or a.startswith(own + '=') for own in _OWN)]
    return ' '.join(['python -m trainer.main', *kept, f'--initial_lr={rate:.3g}'])


def main(argv):
    trainer_main.quiet()
    if len(argv) > 1:
        trainer_main.fail(f'unexpected arguments: {" ".join(argv[1:])} (flags are --name=value)')
    min_lr = DEFAULT_MIN_LR if FLAGS.min_lr is None else FLAGS.min_lr
    max_lr = DEFAULT_MAX_LR if FLAGS.max_lr is None else FLAGS.max_lr
    try:
        config = trainer_flags.to_config(FLAGS)
        result = api.find_lr_run(config, FLAGS.out, min_lr, max_lr, FLAGS.num_steps)
    except (config_lib.ConfigError, data.DataError) as e:
        trainer_main.fail(' '.join(str(e).split()))
    except faults.Stop as e:
        print(f'error: {e}' if e.error else str(e), file=sys.stderr)
        sys.exit(e.exit_status)
    if result.suggestion is None:
        print(f'error: no rate to suggest: {result.rule}; see {result.figure or FLAGS.out}', file=sys.stderr)
        sys.exit(1)
    print(f'figure: {result.figure}' if result.figure else f'scalars in {FLAGS.out}/train')
    print(paste_line(sys.argv[1:], result.suggestion))


if __name__ == '__main__':
    app.run(main, flags_parser=trainer_main.parse)
