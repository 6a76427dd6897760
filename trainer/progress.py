"""What the user sees while training: a Keras Progbar per epoch on a terminal, plain lines otherwise.

Both go to stdout (errors and warnings go to stderr), so `python -m trainer.main > log.txt` keeps a clean log.
"""
import sys
import time

import keras

# Without a terminal, a progress line at most this often (plus one at every epoch end).
LOG_SECONDS = 10.0


class Progress:
    """Reports steps, epoch ends and the end of the run; `interactive` defaults to stdout being a TTY."""

    def __init__(self, steps_per_epoch, total_steps, interactive=None):
        self._per_epoch = steps_per_epoch
        self._total = total_steps
        self._interactive = sys.stdout.isatty() if interactive is None else interactive
        self._bar = None
        self._bar_epoch = None
        self._last_log = time.monotonic()

    def _epochs(self):
        return -(-self._total // self._per_epoch)

    def begin(self, step):
        """Before a loop call starting at global step `step`: opens the epoch's progress bar (it times from here)."""
        epoch = step // self._per_epoch
        if self._interactive and self._bar_epoch != epoch:
            print(f'Epoch {epoch + 1}/{self._epochs()}')
            target = min(self._per_epoch, self._total - epoch * self._per_epoch)
            # Every value shown is the mean of the last loop call, not a running mean of Progbar's.
            self._bar = keras.utils.Progbar(target, stateless_metrics=())
            self._bar.update(step - epoch * self._per_epoch)
            self._bar_epoch = epoch

    def step(self, step, values, rate):
        """After a loop call that ended at global step `step`: its {'loss', metrics} means and last rate."""
        epoch = (step - 1) // self._per_epoch
        if self._interactive:
            self._bar.update(step - epoch * self._per_epoch, values=[*values.items(), ('lr', rate)])
        elif time.monotonic() - self._last_log >= LOG_SECONDS:
            self._last_log = time.monotonic()
            self._say(f'step {step}/{self._total} (epoch {epoch + 1}): {_values(values)}, learning rate {rate:.3g}')

    def epoch_end(self, step, values, rate, evaluation, steps_per_sec):
        """At the end of an epoch (or of the run); evaluation is None when there is none."""
        self._bar_epoch = None
        self._last_log = time.monotonic()
        line = (f'epoch {-(-step // self._per_epoch)}/{self._epochs()} (step {step}): {_values(values)}, '
                f'learning rate {rate:.3g}')
        if evaluation is not None:
            line += f'; eval {_values(evaluation)}'
        if steps_per_sec:
            line += f'; {steps_per_sec:.1f} steps/s'
        self._say(line)

    def _say(self, line):
        if not self._interactive:
            line = time.strftime('%H:%M:%S ') + line
        print(line, flush=True)

    def summary(self, lines):
        """The end-of-run summary, one line each."""
        for line in lines:
            self._say(line)


def _values(values):
    return ', '.join(f'{name} {value:.4f}' for name, value in values.items())
