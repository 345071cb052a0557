"""The targets of the issue, judged on one run's results, and the plot of cost against size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CPU_RATIO = 1.5
POSTGRES_MS = 2.0
KUBERNETES_MS = 5.0
STEADY_P99_MS = 50.0
RSS_MIB = 60.0
STARTUP_SECONDS = 1.5
CURVATURE = 1.5


def targets(results: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    """(target, met, what was measured) for every target."""
    ours = results["cozyplane"]
    cases = results["cases"]
    out = []
    worst = max(cases.items(), key=lambda kv: kv[1]["cpu_ratio"])
    out.append(
        (
            f"CPU per call <= {CPU_RATIO}x the floor (every case)",
            worst[1]["cpu_ratio"] <= CPU_RATIO,
            f"worst {worst[0]}: {worst[1]['cpu_ratio']}x",
        )
    )
    for label, limit in (("postgres-full", POSTGRES_MS), ("kubernetes-full", KUBERNETES_MS)):
        if label in cases:
            cpu = cases[label]["cpu_ms"]
            out.append((f"{label} <= {limit} ms CPU per call", cpu <= limit, f"{cpu} ms"))
    steady = ours["steady"]
    out.append(
        (
            f"{steady['rate']:.0f} calls/s on one core, p99 < {STEADY_P99_MS} ms",
            steady["p99_ms"] < STEADY_P99_MS
            and steady["calls_per_second"] >= 0.95 * steady["rate"],
            f"{steady['calls_per_second']} calls/s, p99 {steady['p99_ms']} ms",
        )
    )
    out.append(
        (
            f"RSS under load <= {RSS_MIB} MiB",
            ours["rss_peak_mib"] <= RSS_MIB,
            f"{ours['rss_peak_mib']} MiB (idle {ours['rss_idle_mib']} MiB); the floor: "
            f"{results['floor']['rss_peak_mib']} MiB (idle {results['floor']['rss_idle_mib']} MiB)",
        )
    )
    out.append(
        (
            f"serving within {STARTUP_SECONDS} s of start",
            ours["startup_seconds"] <= STARTUP_SECONDS,
            f"{ours['startup_seconds']} s",
        )
    )
    for name, fit in results["scaling"].items():
        curvature = fit["curvature"]
        context = f"noise {fit['noise']:.0%}, the floor's {fit['floor_curvature']}"
        shown = (
            f"not measurable: 1 to 10 costs less than the noise ({context})"
            if curvature is None
            else f"{curvature} ({context})"
        )
        out.append(
            (
                f"{name}: linear (curvature <= {CURVATURE})",
                None if curvature is None else curvature <= CURVATURE,
                f"curvature {shown}, {fit['ms_per_unit']} ms per unit, r2 {fit['r2']}",
            )
        )
    return out


def summary(results: dict[str, Any]) -> str:
    lines = [
        "| case | kind | objects | response KiB | CPU ms | floor ms | ratio | p50 c1 | p99 c16 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    ours = results["cozyplane"]["cases"]
    for label, row in results["cases"].items():
        lines.append(
            f"| {label} | {row['kind']} | {row['composed']} | {row['response_kib']} | "
            f"{row['cpu_ms']} | {row['floor_cpu_ms']} | {row['cpu_ratio']}x | "
            f"{ours[label]['c1']['p50_ms']} ms | {ours[label]['c16']['p99_ms']} ms |"
        )
    lines += ["", "| target | met | measured |", "|---|---|---|"]
    met = {True: "yes", False: "NO", None: "n/a"}
    lines += [f"| {t} | {met[ok]} | {m} |" for t, ok, m in targets(results)]
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    # Imported here: only the full run plots, and matplotlib takes a second to load.
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, fit in results["scaling"].items():
        xs = [p["scale"] for p in fit["points"]]
        ys = [p["cpu_ms"] for p in fit["points"]]
        line = left.plot(xs, ys, "o", label=name)[0]
        left.plot(
            xs,
            [fit["intercept_ms"] + fit["ms_per_unit"] * x for x in xs],
            "-",
            color=line.get_color(),
            alpha=0.6,
        )
    left.set_xlabel("scale: node groups, quota keys, users")
    left.set_ylabel("server CPU per call (ms)")
    left.set_title("Cost against size (points: 1, 10, 100; lines: linear fit)")
    left.legend()
    rows = [(k, v) for k, v in results["cases"].items() if not k[0].isupper()]
    labels = [k for k, _ in rows]
    right.barh(labels, [v["cpu_ms"] for _, v in rows], label="cozyplane")
    right.barh(labels, [v["floor_cpu_ms"] for _, v in rows], label="floor")
    right.set_xlabel("server CPU per call (ms)")
    right.set_title("Examples: cozyplane against the floor")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
