"""A non-finite step inside the compiled loop, on one device and on two replicas (one of them bad)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from nonfinite_scenario import BAD_STEP, STEPS

SCENARIO = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'nonfinite_scenario.py')


def scenario(mode, cpu_devices):
    done = subprocess.run([sys.executable, SCENARIO, mode, str(cpu_devices)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize('cpu_devices', [1, 2])
def test_stop_ends_the_call_at_the_bad_step_uncounted(cpu_devices):
    result = scenario('stop', cpu_devices)
    assert result['replicas'] == cpu_devices
    assert result['counts'] == [1, BAD_STEP]
    # The global step stays at the bad step: the run stops there and saves nothing after the last checkpoint.
    assert result['global_step'] == BAD_STEP
    assert result['mean_loss'] == 0.0  # no good step in the call


@pytest.mark.parametrize('cpu_devices', [1, 2])
def test_skip_leaves_weights_and_optimizer_state_as_they_were(cpu_devices):
    result = scenario('skip', cpu_devices)
    assert result['replicas'] == cpu_devices
    assert result['counts'] == [1, BAD_STEP]
    assert result['global_step'] == STEPS  # the schedule and the data go on
    assert result['iterations'] == STEPS - 1  # the optimizer counts applied steps only
    assert np.isfinite(result['mean_loss'])
    for before, after in zip(result['before_bad'], result['after_bad'], strict=True):
        np.testing.assert_array_equal(np.asarray(after), np.asarray(before))
