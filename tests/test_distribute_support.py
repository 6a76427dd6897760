"""Helpers of the distribution tests (no tests here): common flags, a local cluster of trainer.main workers."""
import json
import os
import signal
import socket
import subprocess
import sys

import numpy as np

from test_trainer_support import REPO

# Bounded waits: a worker that hangs (e.g. waiting for a peer that died) fails the test instead of blocking it.
WORKER_TIMEOUT = 150


def common(data_dir, model_dir, *extra):
    """A small Fashion-MNIST run (Debian's files; an empty --data_dir keeps any prepared copy out)."""
    return [f'--data_dir={data_dir}', f'--model_dir={model_dir}', '--train_split=train[:512]', '--model=mlp',
            '--batch_size=16', '--schedule=cosine', '--warmup_steps=4', '--seed=3', *extra]


def free_ports(count):
    """Ports free on 127.0.0.1 right now (held open together so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(('127.0.0.1', 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def start_cluster(args, tmp_dir, workers=2):
    """Starts `workers` trainer.main processes with a TF_CONFIG each (127.0.0.1 only); returns the Popens.

    TMPDIR is `tmp_dir`, so the test sees what the workers leave in their temporary folder.
    """
    addresses = [f'127.0.0.1:{port}' for port in free_ports(workers)]
    processes = []
    for index in range(workers):
        tf_config = {'cluster': {'worker': addresses}, 'task': {'type': 'worker', 'index': index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(tf_config), TF_CPP_MIN_LOG_LEVEL='2', TMPDIR=str(tmp_dir))
        processes.append(subprocess.Popen([sys.executable, '-m', 'trainer.main', '--strategy=multi_worker', *args],
                                          cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True))
    return processes


def finish(processes):
    """[(returncode, stdout, stderr)] once every process ended; kills them all after WORKER_TIMEOUT seconds."""
    results = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=WORKER_TIMEOUT)
            results.append((process.returncode, out, err))
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.communicate()
    return results


def relative_differences(a, b):
    """{name: |a - b| / |a|} (Frobenius norms) of the float tensors of two checkpoints with the same names."""
    assert sorted(a) == sorted(b)
    return {name: float(np.linalg.norm(a[name] - b[name]) / max(np.linalg.norm(a[name]), 1e-30))
            for name in a if a[name].dtype.kind == 'f'}
