"""The model_dir's own files besides checkpoints and summaries: the run's settings and its evaluations.

config.json: the settings the run was started with; a rerun with different ones is refused rather than
mixing two runs in one folder. evaluations.json: [{"step", "loss", <metric>: value, ...}] after each evaluation,
for the end-of-run summary after a resume and for tools that compare runs.
"""
import json
import os

from trainer.config import RESUMABLE_CHANGES, Config, ConfigError

CONFIG = 'config.json'
EVALUATIONS = 'evaluations.json'


def check_and_create(model_dir, settings):
    """Creates `model_dir`, or checks that the run in it was started with the same `settings`.

    Raises ConfigError when the folder cannot be written or holds a different run; reads before it writes.
    """
    path = os.path.join(model_dir, CONFIG)
    try:
        with open(path) as f:
            previous = json.load(f)
    except FileNotFoundError:
        previous = None
    except OSError as e:
        raise ConfigError(f'--model_dir={model_dir} is not a usable folder ({e.strerror or e})') from None
    except ValueError as e:
        raise ConfigError(f'--model_dir={model_dir}: cannot read {CONFIG} of the run there ({e})') from None
    if previous is not None:
        # A setting added after the run was started is read as its default (what the run used).
        previous = {**{k: v for k, v in Config(model_dir='').as_dict().items() if k in settings}, **previous}
        for key in sorted(set(previous) | set(settings)):
            if key not in RESUMABLE_CHANGES and previous.get(key) != settings.get(key):
                raise ConfigError(
                    f'--model_dir={model_dir} holds a run with {key}={previous.get(key)!r}, not '
                    f'{settings.get(key)!r}; rerun with the same settings to resume it, or use another '
                    '--model_dir')
    try:
        os.makedirs(model_dir, exist_ok=True)
        _write_json(path, settings)
    except OSError as e:
        raise ConfigError(f'--model_dir={model_dir} is not writable ({e.strerror or e})') from None


def previous(model_dir):
    """The settings of the run in model_dir ({} keys as config.json has them), or None; reads only."""
    try:
        with open(os.path.join(model_dir, CONFIG)) as f:
            return json.load(f)
    except (OSError, ValueError):  # none yet (or unreadable: check_and_create says so, before anything is written)
        return None


def evaluations(model_dir, up_to_step):
    """The evaluations recorded at steps <= up_to_step (later ones belong to steps about to be redone)."""
    try:
        with open(os.path.join(model_dir, EVALUATIONS)) as f:
            return [e for e in json.load(f) if e['step'] <= up_to_step]
    except FileNotFoundError:
        return []


def save_evaluations(model_dir, records):
    _write_json(os.path.join(model_dir, EVALUATIONS), records)


def _write_json(path, value):
    # Written beside and renamed over, so a crash leaves the old file or the new one, never half of one.
    partial = path + '.partial'
    with open(partial, 'w') as f:
        json.dump(value, f, indent=1, sort_keys=True)
    os.replace(partial, path)
