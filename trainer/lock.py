"""One run per model_dir: an exclusive flock on `<model_dir>/lock`, which holds the owner's process id.

The kernel drops a flock when its process dies, however it dies (kill -9 included), so a lock is never left
stuck; the pid in the file is only there to name the owner in the refusal.
"""
import contextlib
import fcntl
import os
import socket
import time

from trainer.config import ConfigError

NAME = 'lock'


@contextlib.contextmanager
def hold(model_dir):
    """Creates model_dir if needed and holds its lock for the `with` block; raises ConfigError if it is taken."""
    path = os.path.join(model_dir, NAME)
    try:
        os.makedirs(model_dir, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise ConfigError(f'--model_dir={model_dir} is not a usable folder ({e.strerror or e})') from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f'--model_dir={model_dir} is in use by {_owner(fd)}; wait for it to end or stop it, or '
                              'use another --model_dir') from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f'process {os.getpid()} on {socket.gethostname()}\n'.encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # no stale name for the next run's refusals (a killed run leaves its own)
    finally:
        os.close(fd)  # also releases the flock


def _owner(fd):
    """The holder's line; the holder writes it just after taking the lock, so an empty file is read again."""
    deadline = time.monotonic() + 2.0
    while True:
        owner = os.pread(fd, 256, 0).decode(errors='replace').strip()
        if owner or time.monotonic() > deadline:
            return owner or 'another process'
        time.sleep(0.02)
