"""The benchmark's quick mode as a guard: fails on a CPU-ratio regression, never on time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import guard, run
from benchmarks.store import Case

ROOT = Path(__file__).resolve().parent.parent


def test_the_guard_flags_a_ratio_beyond_the_tolerance(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps({"postgres-full": 2.0, "redis-full": 2.0}))
    results = {
        "cases": {
            "postgres-full": {"cpu_ratio": 2.0 * guard.TOLERANCE},
            "redis-full": {"cpu_ratio": 2.0 * guard.TOLERANCE + 0.01},
            "vpn-full": {"cpu_ratio": 1.0},
        }
    }
    found = guard.regressions(results, baseline)
    assert [line.split(":")[0] for line in found] == ["redis-full", "vpn-full"]


def _series(costs: dict[int, list[float]], floor: float = 0.1) -> dict[str, object]:
    """The fit of a series whose points took `costs` per call in their rounds; the floor
    costs `floor` per call and unit."""
    cases = [Case(f"s{x}", "Kubernetes", b"", b"", x, "s", x) for x in costs]
    table = {
        f"s{x}": {"cpu_ms_rounds": rounds, "floor_cpu_ms_rounds": [1.0 + floor * x] * 3}
        for x, rounds in costs.items()
    }
    fit: dict[str, object] = run.fits(table, cases)["s"]
    return fit


def test_the_scale_fit_tells_linear_from_quadratic_cost() -> None:
    # Each point's median round counts: one disturbed round does not move it.
    linear = _series({1: [1.2, 1.2, 9.0], 10: [3.0, 3.0, 3.0], 100: [21.0, 0.5, 21.0]})
    assert linear["ms_per_unit"] == pytest.approx(0.2)
    assert linear["curvature"] == pytest.approx(1.0)
    assert linear["floor_curvature"] == pytest.approx(1.0)
    assert linear["r2"] == pytest.approx(1.0)
    quadratic = _series({1: [1.01] * 3, 10: [2.0] * 3, 100: [101.0] * 3})
    assert quadratic["curvature"] == pytest.approx(10.0)


def test_a_first_step_within_the_rounds_noise_is_not_measurable() -> None:
    # 1 to 10 adds 5%; the rounds of the first point are 8% either side of their median.
    fit = _series({1: [0.92, 1.0, 1.08], 10: [1.05] * 3, 100: [2.0] * 3})
    assert fit["noise"] == pytest.approx(0.08)
    assert fit["curvature"] is None
    steady = _series({1: [1.0] * 3, 10: [1.05] * 3, 100: [2.0] * 3})
    assert steady["noise"] == run.NOISE
    assert steady["curvature"] == pytest.approx(1.9)


def test_quick_benchmark_has_no_cpu_ratio_regression(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--guard", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    print(run.stdout)
    assert run.returncode == 0, run.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    # Every kind ran against its floor over mTLS; both servers first answered each case
    # exactly as function-cozyplane does in process (the run stops otherwise).
    assert {c["kind"] for c in results["cases"].values()} == {
        "Tenant",
        "Kubernetes",
        "Postgres",
        "MariaDB",
        "Redis",
        "RabbitMQ",
        "HTTPCache",
        "VPN",
        "VirtualMachine",
        "VMDisk",
    }
    for server in ("cozyplane", "floor"):
        assert all(c["c16"]["calls"] > 0 for c in results[server]["cases"].values()), server
