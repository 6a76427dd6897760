"""Takes the README's TensorBoard pictures in a real browser: `python docs/tensorboard_pictures.py`.

Trains configs/quick.flags twice (cosine, then cosine_restarts) into one logdir, serves it with TensorBoard
on a loopback port and photographs, in headless Chromium (Debian's `chromium`), what a user sees on opening
it (the Time Series tab) and the HParams table. Needs `apt-get install chromium`; --skip_training reuses the
runs already in --logdir.
"""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = {'cosine': [], 'cosine_restarts': ['--schedule=cosine_restarts']}
PAGES = {'tensorboard.png': '#timeseries', 'tensorboard_hparams.png': '#hparams'}

FLAGS = flags.FLAGS
flags.DEFINE_string('logdir', 'runs/tensorboard-pictures', 'Folder of the two runs.')
flags.DEFINE_string('out', os.path.join(REPO, 'docs', 'images'), 'Folder for the pictures.')
flags.DEFINE_boolean('skip_training', False, 'Use the runs already in --logdir.')
flags.DEFINE_string('chromium', '/usr/bin/chromium', 'The browser.')
flags.DEFINE_string('window', '1920,1080', 'Browser window size in pixels, width,height.')


def _train(logdir):
    for name, extra in RUNS.items():
        subprocess.run([sys.executable, '-m', 'trainer.main', '--flagfile=configs/quick.flags',
                        f'--model_dir={os.path.join(logdir, name)}', *extra], cwd=REPO, check=True)


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _served(port, logdir):
    try:
        with urllib.request.urlopen(f'http://127.0.0.1:{port}/data/plugin/scalars/tags', timeout=5) as response:
            tags = json.load(response)
    except (urllib.error.URLError, ConnectionError):
        return False
    return all(f'{name}/eval' in tags for name in RUNS)


def main(argv):
    del argv
    logdir = os.path.abspath(FLAGS.logdir)
    if not FLAGS.skip_training:
        _train(logdir)
    port = _free_port()
    server = subprocess.Popen([sys.executable, '-m', 'tensorboard.main', f'--logdir={logdir}', '--host=127.0.0.1',
                               f'--port={port}'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not _served(port, logdir):
            if time.monotonic() > deadline or server.poll() is not None:
                sys.exit('TensorBoard did not serve the runs within 120 s')
            time.sleep(1)
        time.sleep(5)  # the data server loads the rest of the steps in the background
        os.makedirs(FLAGS.out, exist_ok=True)
        for name, page in PAGES.items():
            path = os.path.join(FLAGS.out, name)
            # --virtual-time-budget lets the page run its requests and draw before the picture is taken.
            subprocess.run([FLAGS.chromium, '--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars',
                            f'--window-size={FLAGS.window}', '--virtual-time-budget=30000', f'--screenshot={path}',
                            f'http://127.0.0.1:{port}/{page}'], check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=180)
            print(f'wrote {path}')
    finally:
        server.kill()


if __name__ == '__main__':
    app.run(main)
