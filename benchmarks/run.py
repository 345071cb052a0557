"""Measure function-cozyplane against the floor, in one run, and write the results."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1

from benchmarks import harness
from benchmarks.store import Case, write_cases
from benchmarks.workload import ROOT

# The load model: 10,000 claims, one call per reconcile, a 60 s TTL.
TARGET_RATE = 170.0
# CPU per call varies by a few percent between runs of the same case, at the least; a
# run measures its own spread between rounds, and counts the larger.
NOISE = 0.03


@dataclass(frozen=True)
class Plan:
    """How long to measure: the quick plan guards regressions, the full one reports.

    Each case is measured in `rounds` turns, cozyplane and the floor alternating (the order
    swapped every round), so that a machine getting busier or quieter during the run moves
    both sides of a ratio alike.
    """

    rounds: int
    warmup: int
    sequential_calls: int
    concurrent_seconds: float
    saturation_seconds: float
    steady_seconds: float

    @classmethod
    def of(cls, quick: bool) -> Plan:
        if quick:
            return cls(
                rounds=3,
                warmup=5,
                sequential_calls=10,
                concurrent_seconds=0.25,
                saturation_seconds=1.0,
                steady_seconds=2.0,
            )
        return cls(
            rounds=4,
            warmup=20,
            sequential_calls=50,
            concurrent_seconds=1.0,
            saturation_seconds=5.0,
            steady_seconds=15.0,
        )


def commands() -> dict[str, list[str]]:
    py = harness.python()
    return {
        "cozyplane": [py, "-m", "functions", "serve"],
        "floor": [py, "-m", "benchmarks.floor", "--cases", "{cases}"],
    }


@dataclass
class _Target:
    server: harness.Server
    stub: grpcv1.FunctionRunnerServiceStub
    startup: float
    idle_kib: int = 0


async def _case(
    target: _Target, req: fnv1.RunFunctionRequest, plan: Plan
) -> tuple[harness.Run, harness.Run]:
    """One round of a case on one server: sequential calls, then 16 at a time."""

    def one(_: int) -> fnv1.RunFunctionRequest:
        return req

    server, stub = target.server, target.stub
    await harness.closed_loop(server, stub, one, concurrency=1, calls=plan.warmup)
    c1 = await harness.closed_loop(server, stub, one, concurrency=1, calls=plan.sequential_calls)
    c16 = await harness.closed_loop(
        server, stub, one, concurrency=16, seconds=plan.concurrent_seconds
    )
    return c1, c16


async def _measure(
    argvs: dict[str, list[str]],
    pki: harness.Pki,
    logs: Path,
    cases: list[Case],
    mix: list[Case],
    plan: Plan,
) -> dict[str, Any]:
    requests: dict[str, fnv1.RunFunctionRequest] = {
        c.label: fnv1.RunFunctionRequest.FromString(c.request) for c in cases
    }
    targets: dict[str, _Target] = {}
    first = requests[mix[0].label]

    async def start(stack: contextlib.AsyncExitStack, name: str, log: str) -> _Target:
        server = harness.Server(name, argvs[name], pki, logs / log, logs / "bytecode")
        stack.callback(server.stop)
        channel = await stack.enter_async_context(pki.channel(server.address))
        stub = grpcv1.FunctionRunnerServiceStub(channel)  # type: ignore[no-untyped-call]
        return _Target(server, stub, await harness.wait_serving(server, stub, first))

    for name in argvs:
        # A first start compiles the modules either server imports; the second is measured.
        async with contextlib.AsyncExitStack() as warm:
            await start(warm, name, f"{name}-first.log")
    async with contextlib.AsyncExitStack() as stack:
        for name in argvs:
            # One at a time, so that neither start-up competes with the other for the CPU.
            targets[name] = await start(stack, name, f"{name}.log")
        for name, target in targets.items():
            for case in cases:
                answer = await target.stub.RunFunction(requests[case.label])
                if answer.SerializeToString(deterministic=True) != case.response:
                    raise RuntimeError(f"{name} does not answer {case.label} as expected")
        await asyncio.sleep(0.5)
        for target in targets.values():
            target.idle_kib = target.server.memory_kib("VmRSS")

        runs: dict[str, dict[str, list[tuple[harness.Run, harness.Run]]]] = {
            name: {c.label: [] for c in cases} for name in targets
        }
        for case in cases:
            for turn in range(plan.rounds):
                order = list(targets) if turn % 2 == 0 else list(reversed(targets))
                for name in order:
                    runs[name][case.label].append(
                        await _case(targets[name], requests[case.label], plan)
                    )

        cycle = [requests[c.label] for c in mix]

        def mixed(i: int) -> fnv1.RunFunctionRequest:
            return cycle[i % len(cycle)]

        out: dict[str, Any] = {}
        for name, target in targets.items():
            server, stub = target.server, target.stub
            saturated = await harness.closed_loop(
                server, stub, mixed, concurrency=16, seconds=plan.saturation_seconds
            )
            steady = await harness.open_loop(
                server, stub, mixed, rate=TARGET_RATE, seconds=plan.steady_seconds
            )
            out[name] = {
                "startup_seconds": round(target.startup, 3),
                "rss_idle_mib": round(target.idle_kib / 1024, 1),
                "rss_peak_mib": round(server.memory_kib("VmHWM") / 1024, 1),
                "cases": {
                    label: {
                        "c1": harness.Run.combined([c1 for c1, _ in turns]).summary(),
                        "c16": harness.Run.combined([c16 for _, c16 in turns]).summary()
                        | {"cpu_ms_rounds": [round(c16.cpu_ms_per_call, 4) for _, c16 in turns]},
                    }
                    for label, turns in runs[name].items()
                },
                "saturated": saturated.summary(),
                "steady": steady.summary() | {"rate": TARGET_RATE},
            }
        return out


def measure(cases: list[Case], plan: Plan, work: Path) -> dict[str, Any]:
    """Serve both functions at once and drive them with the same requests, in turns."""
    harness.pin_client()
    pki = harness.Pki.make(work / "pki")
    cases_file = work / "cases.json"
    write_cases(cases_file, cases)
    mix = [c for c in cases if not c.series]
    argvs = {
        name: [a.replace("{cases}", str(cases_file)) for a in command]
        for name, command in commands().items()
    }
    return asyncio.run(_measure(argvs, pki, work, cases, mix, plan))


def ratios(results: dict[str, Any], cases: list[Case]) -> dict[str, Any]:
    ours, floor = results["cozyplane"], results["floor"]
    table: dict[str, Any] = {}
    for case in cases:
        a, b = ours["cases"][case.label], floor["cases"][case.label]
        table[case.label] = {
            "kind": case.kind,
            "composed": case.composed,
            "request_kib": round(len(case.request) / 1024, 1),
            "response_kib": round(len(case.response) / 1024, 1),
            "cpu_ms": a["c16"]["cpu_ms_per_call"],
            "cpu_ms_rounds": a["c16"]["cpu_ms_rounds"],
            "floor_cpu_ms_rounds": b["c16"]["cpu_ms_rounds"],
            "floor_cpu_ms": b["c16"]["cpu_ms_per_call"],
            "cpu_ratio": round(a["c16"]["cpu_ms_per_call"] / b["c16"]["cpu_ms_per_call"], 2),
            "p50_c1_ratio": round(a["c1"]["p50_ms"] / b["c1"]["p50_ms"], 2),
            "p99_c1_ratio": round(a["c1"]["p99_ms"] / b["c1"]["p99_ms"], 2),
            "p50_c16_ratio": round(a["c16"]["p50_ms"] / b["c16"]["p50_ms"], 2),
            "p99_c16_ratio": round(a["c16"]["p99_ms"] / b["c16"]["p99_ms"], 2),
            "calls_per_second_ratio": round(
                a["c16"]["calls_per_second"] / b["c16"]["calls_per_second"], 2
            ),
        }
    return table


def _curvature(xs: list[int], rounds: list[list[float]]) -> tuple[list[float], float | None, float]:
    """Each point's median round, the last segment's marginal cost over the first's, and
    the noise that ratio is judged against: the larger of NOISE and the first two points'
    median absolute deviation, relative to their medians. Medians, because a round the
    machine disturbs (another tenant of a shared host) is an outlier, not a measurement."""
    ys = [median(r) for r in rounds]
    deviations = [median([abs(v - y) for v in r]) / y for r, y in zip(rounds[:2], ys, strict=False)]
    noise = max(NOISE, *deviations)
    first = (ys[1] - ys[0]) / (xs[1] - xs[0])
    last = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
    # When the first segment costs less than the noise, the ratio measures noise: such a
    # series cannot tell linear from quadratic, and says so (None).
    measurable = ys[1] - ys[0] > noise * ys[0]
    return ys, round(last / first, 2) if measurable else None, round(noise, 3)


def fits(table: dict[str, Any], cases: list[Case]) -> dict[str, Any]:
    """Least-squares cost per unit of scale (node group, quota key, user) along each series,
    and its curvature, with the floor's on the same series beside it (the gRPC server's
    own cost is not quite linear in message size)."""
    out: dict[str, Any] = {}
    key = lambda c: c.series  # noqa: E731
    for name, group in itertools.groupby(sorted((c for c in cases if c.series), key=key), key):
        ordered = sorted(group, key=lambda c: c.x)
        xs = [c.x for c in ordered]
        ys, curvature, noise = _curvature(xs, [table[c.label]["cpu_ms_rounds"] for c in ordered])
        _, floor_curvature, _ = _curvature(
            xs, [table[c.label]["floor_cpu_ms_rounds"] for c in ordered]
        )
        n = len(xs)
        mx, my = sum(xs) / n, sum(ys) / n
        sxx = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
        intercept = my - slope * mx
        ss_tot = sum((y - my) ** 2 for y in ys)
        ss_res = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
        out[name] = {
            "points": [
                {"scale": c.x, "cpu_ms": round(y, 4), "composed": c.composed}
                for c, y in zip(ordered, ys, strict=True)
            ],
            "ms_per_unit": round(slope, 4),
            "intercept_ms": round(intercept, 3),
            "r2": round(1 - ss_res / ss_tot, 4) if ss_tot else 1.0,
            "noise": noise,
            "curvature": curvature,
            "floor_curvature": floor_curvature,
        }
    return out


def run(cases: list[Case], quick: bool) -> dict[str, Any]:
    plan = Plan.of(quick)
    with tempfile.TemporaryDirectory(prefix="cozyplane-bench-") as tmp:
        started = time.monotonic()
        results = measure(cases, plan, Path(tmp))
    table = ratios(results, cases)
    return {
        "quick": quick,
        "seconds": round(time.monotonic() - started, 1),
        "cozyplane": results["cozyplane"],
        "floor": results["floor"],
        "cases": table,
        "scaling": fits(table, cases),
    }


__all__ = ["ROOT", "run"]
