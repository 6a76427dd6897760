"""trainer.bench runs every contender and writes its tables (figures are the bench's business, not a test's)."""

import json
import subprocess
import sys


def test_throughput_bench_writes_every_contender(tmp_path):
    result = subprocess.run([sys.executable, "-m", "trainer.bench", "--steps=200", "--repeats=1",
                             "--batch_size=8", f"--out={tmp_path}"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "throughput.json").read_text())
    contenders = {"bare", "loop", "loop_stream", "fit", "fit_fast", "eager"}
    assert set(report["examples_per_sec"]) == contenders
    assert all(rate > 0 for rate in report["examples_per_sec"].values())
    assert set(report["ratios"]) == {f"loop/{name}" for name in contenders - {"loop"}}
    rates = report["examples_per_sec"]
    assert report["ratios"]["loop/fit"] == rates["loop"] / rates["fit"]
    # One round: the paired ratio (within each round, median over rounds) is that round's ratio.
    assert report["paired_ratios"].keys() == report["ratios"].keys()
    for name, ratio in report["ratios"].items():
        assert abs(report["paired_ratios"][name] - ratio) <= 1e-9 * ratio
    assert {name: len(times) for name, times in report["window_ms_per_step"].items()} == dict.fromkeys(contenders, 1)
    assert 0 < report["schedule_share_of_loop_step"] < 1 and report["batch_size"] == 8
    table = (tmp_path / "throughput.md").read_text()
    assert all(f"| {name} |" in table for name in contenders)
    assert f'loop_stream at {1 / report["paired_ratios"]["loop/loop_stream"]:.3f} x the loop' in table


def test_paired_ratios_are_medians_of_ratios_within_rounds():
    # Three rounds in which the machine slows down: within each round the loop is 10% faster than fit.
    per_step = {"loop": [1.0, 2.0, 4.0], "fit": [1.1, 2.2, 4.4], "bare": [0.5, 3.0, 3.2]}
    # In a process of its own: trainer.bench defines absl flags that trainer.main's would clash with.
    script = f"import json; from trainer import bench; print(json.dumps(bench._paired_ratios({per_step!r})))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    paired = json.loads(result.stdout.strip().splitlines()[-1])
    assert paired.keys() == {"loop/fit", "loop/bare"}
    assert abs(paired["loop/fit"] - 1.1) < 1e-12
    assert abs(paired["loop/bare"] - 0.8) < 1e-12  # rounds 0.5, 1.5, 0.8: not the ratio of medians (3.0 / 2.0)


def test_bad_steps_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "trainer.bench", "--steps=250", f"--out={tmp_path}"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: --steps=250 must be a multiple of 200")
    assert not (tmp_path / "throughput.json").exists()


def test_replicas_bench_times_one_and_two_cpu_replicas(tmp_path):
    result = subprocess.run([sys.executable, "-m", "trainer.bench", "--replicas", "--steps=200", "--repeats=1",
                             "--batch_size=8", f"--out={tmp_path}"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "replicas.json").read_text())
    assert set(report["examples_per_sec"]) == {"1 replica", "2 replicas"}
    assert all(rate > 0 for rate in report["examples_per_sec"].values())
    assert "| mirrored | 2 |" in (tmp_path / "replicas.md").read_text()
