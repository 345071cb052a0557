"""The benchmark's quick mode as a guard: fails on a CPU-ratio regression, never on time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks import guard

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
