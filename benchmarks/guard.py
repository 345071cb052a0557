"""The regression guard: CPU ratios to the floor, per case, against a recorded baseline.

Only ratios are compared, never absolute times: the floor runs on the same machine in the
same run, so a slower or busier machine moves both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BASELINE = Path(__file__).with_name("baseline.json")
# Quick runs are short: allow this much noise before calling a change a regression.
TOLERANCE = 1.5


def baseline_of(results: dict[str, Any]) -> dict[str, float]:
    return {label: case["cpu_ratio"] for label, case in sorted(results["cases"].items())}


def record(results: dict[str, Any], path: Path = BASELINE) -> None:
    path.write_text(json.dumps(baseline_of(results), indent=2, sort_keys=True) + "\n")


def regressions(results: dict[str, Any], path: Path = BASELINE) -> list[str]:
    """A line for each case whose CPU ratio to the floor grew beyond the tolerance."""
    baseline: dict[str, float] = json.loads(path.read_text())
    found = []
    for label, ratio in baseline_of(results).items():
        if label not in baseline:
            found.append(f"{label}: no baseline ratio (record one with --record)")
        elif ratio > baseline[label] * TOLERANCE:
            found.append(
                f"{label}: CPU per call is {ratio}x the floor, baseline {baseline[label]}x "
                f"(allowed up to {round(baseline[label] * TOLERANCE, 2)}x)"
            )
    return found
