"""`python -m benchmarks [--quick] [--guard] [--record] [--out DIR]`: measure, report, guard."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from benchmarks import guard, report, run, workload


@click.command()
@click.option("--quick", is_flag=True, help="Short runs of the largest example of each kind.")
@click.option("--guard", "check", is_flag=True, help="Fail on a CPU-ratio regression.")
@click.option("--record", is_flag=True, help="Record this run's CPU ratios as the baseline.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("out/bench"))
def main(quick: bool, check: bool, record: bool, out: Path) -> None:
    """Measure function-cozyplane against a no-op floor on the same SDK and server."""
    cases = workload.cases(quick=quick)
    results = run.run(cases, quick)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    if not quick:
        report.plot(results, out / "scaling.png")
    click.echo(report.summary(results))
    click.echo(f"\nwrote {out / 'results.json'}" + ("" if quick else f" and {out / 'scaling.png'}"))
    if record:
        guard.record(results)
        click.echo(f"recorded the CPU ratios in {guard.BASELINE}")
    if check:
        found = guard.regressions(results)
        for line in found:
            click.echo(f"REGRESSION {line}", err=True)
        sys.exit(1 if found else 0)


main()
