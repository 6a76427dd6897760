"""The picture CLI and the flag layer the trainer shares."""

import subprocess
import sys

import numpy as np
import pytest
from absl import flags

import schedules
from schedules import flags as schedule_flags
from schedules import plot


def run_plot(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "schedules.plot", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def test_plot_writes_overlaid_curves(tmp_path):
    out = tmp_path / "lr.png"
    result = run_plot("--schedule=cosine_restarts,cosine,polynomial", "--steps=20000", "--cycle_steps=3000",
                      "--cycle_multiplier=1.5", f"--out={out}")
    assert result.returncode == 0, result.stderr
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


@pytest.mark.parametrize("args,flag", [
    (["--schedule=cosine_restart"], "--schedule"),
    (["--schedule=cosine", "--warmup_steps=30000"], "--warmup_steps"),
    (["--schedule=cosine_restarts", "--cycle_multiplier=0.5"], "--cycle_multiplier"),
    (["--schedule=cosine", "--initial_lr=-1"], "--initial_lr"),
    (["--schedule=piecewise_constant", "--boundaries=10,x", "--values=1,2,3"], "--boundaries"),
    (["--schedule=piecewise_constant"], "--boundaries"),
])
def test_plot_bad_input_is_one_line(args, flag, tmp_path):
    out = tmp_path / "lr.png"
    out.write_bytes(b"keep")
    result = run_plot(*args, f"--out={out}")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and flag in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert out.read_bytes() == b"keep"


def test_image_is_rgb():
    rgb = plot.image({"cosine": schedules.get("cosine", initial_lr=1.0, min_lr=0.0, warmup_steps=10,
                                              total_steps=100)}, steps=100)
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.std() > 0


def test_curve_samples_every_step():
    steps, rates = plot.curve(schedules.get("constant", initial_lr=0.5), 999)
    assert list(steps) == list(range(1000)) and np.all(rates == 0.5)


@pytest.fixture
def flag_values():
    values = flags.FlagValues()
    schedule_flags.define(values)
    return values


def test_flags_fill_lengths_from_the_run(flag_values):
    flag_values(["prog", "--cycle_steps=300", "--initial_lr=0.05", "--boundaries=10,20", "--values=1,0.5,0.1"])
    given = schedule_flags.given(flag_values)
    assert given == {"cycle_steps": 300, "initial_lr": 0.05, "boundaries": [10, 20], "values": [1.0, 0.5, 0.1]}
    lr = schedule_flags.build("cosine_restarts", given, run_steps=1200)
    assert lr.get_config() == dict(initial_lr=0.05, min_lr=0.0, warmup_steps=30, cycle_steps=300,
                                   cycle_multiplier=1.0, peak_decay=1.0, max_cycles=None)
    assert schedule_flags.build("cosine", given, run_steps=1200).get_config()["total_steps"] == 1200
    wsd = schedule_flags.build("warmup_stable_decay", given, run_steps=1000).get_config()
    assert (wsd["warmup_steps"], wsd["stable_steps"], wsd["decay_steps"]) == (50, 750, 200)
    assert schedule_flags.build("piecewise_constant", given, 10).get_config()["values"] == [1.0, 0.5, 0.1]


def test_every_schedule_parameter_has_a_flag(flag_values):
    for name in schedules.names():
        for parameter in schedules.parameters(name):
            assert parameter in flag_values, parameter


def test_issue_18_flags_build_the_new_schedules_and_parameters(flag_values):
    flag_values(["prog", "--mode=triangular2", "--anneal_shape=linear", "--three_phase", "--start_lr=1e-4",
                 "--decay_shape=exp", "--decay_ratio=0.05", "--k_decay=2", "--warmup_power=2", "--max_lr=0.5",
                 "--decay_rate=3", "--decay_power=1.5"])
    given = schedule_flags.given(flag_values)
    cyclic = schedule_flags.build("cyclic", given, run_steps=1600).get_config()
    assert (cyclic["up_steps"], cyclic["down_steps"], cyclic["mode"]) == (200, None, "triangular2")
    one_cycle = schedule_flags.build("one_cycle", given, run_steps=1000).get_config()
    assert one_cycle["three_phase"] and one_cycle["anneal_shape"] == "linear" and one_cycle["start_lr"] == 1e-4
    wsd = schedule_flags.build("warmup_stable_decay", given, run_steps=1000).get_config()
    assert (wsd["decay_shape"], wsd["decay_ratio"], wsd["warmup_power"]) == ("exp", 0.05, 2.0)
    restarts = schedule_flags.build("polynomial_restarts", given, run_steps=1000).get_config()
    assert (restarts["cycle_steps"], restarts["warmup_steps"], restarts["k_decay"]) == (250, 25, 2.0)
    power = schedule_flags.build("power_decay", given, run_steps=1000).get_config()
    assert (power["decay_power"], power["warmup_steps"], power["total_steps"]) == (1.5, 50, None)
    growth = schedule_flags.build("exponential", given, run_steps=1000)
    assert growth.get_config()["max_lr"] == 0.5 and float(growth(1000)) == pytest.approx(3e-3)
    assert float(growth(10_000)) == 0.5  # 1e-3 * 3**10 > 0.5
    assert schedule_flags.build("warmup_stable_decay", given, run_steps=1000).get_config()["decay_power"] == 1.5


def test_warmup_prefix_flag_reaches_the_schedules_that_take_it(flag_values):
    flag_values(["prog", "--nowarmup_prefix"])
    given = schedule_flags.given(flag_values)
    assert given == {"warmup_prefix": False}
    for name in ("cosine", "cosine_restarts", "polynomial_restarts"):
        lr = schedule_flags.build(name, given, run_steps=1000)
        assert lr.get_config()["warmup_prefix"] is False
        # Laid over the decay: the step after the warmup is already below the peak.
        warmup = lr.get_config()["warmup_steps"]
        assert 0 < warmup and float(lr(warmup)) < 1e-3 * (1 - 1e-4)
    unset = schedule_flags.build("cosine_restarts", {}, run_steps=1000)
    assert "warmup_prefix" not in unset.get_config() and float(unset(25)) == pytest.approx(1e-3)
    flag_values.unparse_flags()
    flag_values(["prog", "--warmup_prefix"])
    prefixed = schedule_flags.build("cosine", schedule_flags.given(flag_values), 1000)
    assert prefixed.get_config() == schedule_flags.build("cosine", {}, 1000).get_config()  # True is the default


def test_plot_draws_a_new_schedule(tmp_path):
    out = tmp_path / "cyclic.png"
    result = run_plot("--schedule=cyclic,one_cycle", "--steps=4000", "--up_steps=300", "--mode=exp_range",
                      "--gamma=0.9995", "--three_phase", f"--out={out}")
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
