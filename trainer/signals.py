"""SIGTERM and Ctrl-C during training: finish the current loop call, save a checkpoint, flush, exit.

The compiled loop runs in C++, where Python's signal handlers cannot run until the call returns. So the
handlers are no-ops and the signals are read from `signal.set_wakeup_fd` by a thread instead: it reports
the first signal at once and, for a second Ctrl-C, ends the process at once (exit status 130) even in the
middle of a loop call or a checkpoint write (the previous checkpoint stays intact: the `checkpoint` state
file is replaced atomically).

Single-process runs only: in a cluster (trainer.distribute.preemption) TensorFlow's
PreemptionCheckpointHandler owns SIGTERM and a checkpoint needs every worker, so the controller passes no
signals there and Ctrl-C keeps Python's meaning.
"""
import os
import signal
import sys
import threading

NAMES = {signal.SIGTERM: 'SIGTERM', signal.SIGINT: 'Ctrl-C'}
EXIT_STATUS = {signal.SIGTERM: 0, signal.SIGINT: 130}
ALL = (signal.SIGTERM, signal.SIGINT)


class Interrupts:
    """Context manager; `requested` is the first signal received (None until then).

    Does nothing outside the main thread (signal handlers can only be set there), e.g. when trainer.train is
    called from a worker thread; the caller's own handling then stays in place.
    """

    def __init__(self, signals=ALL):
        self.signals = tuple(signals)
        self.requested = None
        self._previous = {}
        self._pipe = None

    def __enter__(self):
        if not self.signals or threading.current_thread() is not threading.main_thread():
            return self
        read, write = os.pipe()
        os.set_blocking(write, False)
        self._pipe = (read, write)
        self._previous_fd = signal.set_wakeup_fd(write)
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, lambda *_: None)
        threading.Thread(target=self._watch, name='stepwise-signals', daemon=True).start()
        return self

    def __exit__(self, *exc):
        if self._pipe is None:
            return
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(self._previous_fd)
        os.close(self._pipe[1])  # ends the watcher (it reads EOF)
        self._pipe = None

    def _watch(self):
        read = self._pipe[0]
        try:
            while data := os.read(read, 64):
                for signum in data:
                    self._received(signum)
        finally:
            os.close(read)

    def _received(self, signum):
        if signum not in self.signals:
            return
        if self.requested is None:
            self.requested = signum
            again = ' (Ctrl-C again to quit at once)' if signum == signal.SIGINT else ''
            _say(f'{NAMES[signum]}: stopping after the current loop call with a checkpoint{again}')
        elif signum == signal.SIGINT:
            _say('Ctrl-C again: quitting at once, without saving')
            os._exit(EXIT_STATUS[signal.SIGINT])

    def stop_message(self, step, checkpoint):
        """The line for a stop at `step` with `checkpoint` saved."""
        return (f'stopped by {NAMES[self.requested]} at step {step}; checkpoint {checkpoint} saved; '
                'rerun the same command to resume')

    @property
    def exit_status(self):
        return EXIT_STATUS[self.requested]


def _say(line):
    print(line, file=sys.stderr, flush=True)
