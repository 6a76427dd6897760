"""Runs trainer.main's entry point (flag parsing, then main) for many argument lists in one process.

stdin: a JSON list of argument lists; stdout: a JSON list of [exit status, stdout, stderr], one per list.
Each list starts from the flag defaults. The bad-flag table (tests/test_faults.py) uses it to start
TensorFlow once instead of once per case; a sample of the table also runs as separate processes.
"""
import contextlib
import io
import json
import sys
import traceback

from trainer import main as entry


def run(args):
    out, err = io.StringIO(), io.StringIO()
    entry.FLAGS.unparse_flags()
    status = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            entry.main(entry.parse(['trainer.main', *args]))
        except SystemExit as e:
            status = e.code
        except Exception:  # what app.run would print: the test then sees the traceback
            traceback.print_exc()
            status = 1
    return status, out.getvalue(), err.getvalue()


if __name__ == '__main__':
    results = [run(args) for args in json.load(sys.stdin)]
    json.dump(results, sys.__stdout__)
