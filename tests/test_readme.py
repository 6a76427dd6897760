"""The README's Python examples of your own task, run as written (in order, one namespace, in a fresh folder)."""
import os
import re

import numpy as np

from test_trainer_support import REPO

MARK = re.compile(r'<!-- README example: ([^>]+) -->\n```python\n(.*?)```', re.S)


def test_the_readme_examples_run_as_written(tmp_path, monkeypatch):
    with open(os.path.join(REPO, 'README.md')) as f:
        examples = MARK.findall(f.read())
    assert [name for name, _ in examples] == ['regression', 'tokens', 'two inputs', 'compute_loss', 'streamed files']
    monkeypatch.chdir(tmp_path)  # their model_dirs are relative: runs/...
    namespace = {}
    finals = {}
    for name, code in examples:
        exec(compile(code, f'README example: {name}', 'exec'), namespace)  # noqa: S102: the README's own code
        finals[name] = namespace['result'].final
        assert os.path.isdir(namespace['result'].export_dir), name
    assert finals['regression']['step'] == 125 and finals['regression']['mae'] < 0.5
    assert finals['tokens']['accuracy'] > 0.95
    # The streamed files hold the regression's 800 training examples: 25 steps of 32 an epoch, as good a fit.
    assert finals['streamed files']['step'] == 125 and finals['streamed files']['mae'] < 0.5
    # The pinball loss of the 90th percentile trained to its quantile: about 90% of the targets below.
    below = np.mean(namespace['y'][800:] <= namespace['quantile'](namespace['x'][800:])[:, 0].numpy())
    assert 0.8 <= below <= 0.97, below
    # The two-input model's export answers with its outputs, from its named inputs.
    served = namespace['serve'](numbers=namespace['features']['numbers'][:2],
                                category=namespace['features']['category'][:2])
    assert sorted(served) == ['kind', 'value'] and np.all(np.isfinite(served['value']))
