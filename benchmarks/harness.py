"""Serve a function in its own process, drive it over mTLS, and measure what it costs.

CPU time is the server process's own (user + system, all threads, from /proc); latency is
what the client sees. The server runs on CPU 0 and the client on CPU 1 when the machine
has two, so "calls/s on one core" is the server's.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1

from tests.support.pki import CA, LOCAL

SERVER_CPU = 0
CLIENT_CPU = 1


def pin_client() -> None:
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {CLIENT_CPU})


@dataclass(frozen=True)
class Pki:
    server_dir: Path
    ca: bytes
    client_cert: bytes
    client_key: bytes

    @classmethod
    def make(cls, directory: Path) -> Pki:
        ca = CA()
        server = ca.write(directory / "server", ca.issue("function", server=True, hosts=LOCAL))
        client = ca.issue("crossplane", server=False)
        return cls(server, ca.pem, client.cert, client.key)

    def channel(self, address: str) -> grpc.aio.Channel:
        creds = grpc.ssl_channel_credentials(self.ca, self.client_key, self.client_cert)
        # Retry a refused connection at once, so start-up time is the server's, not backoff.
        options = [
            ("grpc.initial_reconnect_backoff_ms", 5),
            ("grpc.min_reconnect_backoff_ms", 5),
            ("grpc.max_reconnect_backoff_ms", 20),
        ]
        return grpc.aio.secure_channel(address, creds, options=options)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """A function server process: started, measured, stopped."""

    def __init__(
        self, name: str, command: Sequence[str], pki: Pki, log: Path, bytecode: Path
    ) -> None:
        self.name = name
        self.address = f"127.0.0.1:{_free_port()}"
        argv = [*command, "--tls-certs-dir", str(pki.server_dir), "--address", self.address]
        # Compiled modules are cached in `bytecode`, as the image ships them precompiled:
        # start-up must not count compiling every module, even where the environment
        # asks Python not to write bytecode.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(bytecode)
        self._log = log.open("w")
        self.started = time.monotonic()
        self.popen = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        # Pinned before the interpreter starts its threads, which inherit the affinity.
        if len(os.sched_getaffinity(0)) > 1:
            os.sched_setaffinity(self.popen.pid, {SERVER_CPU})

    def cpu_seconds(self) -> float:
        """CPU time of every thread so far, in nanosecond resolution (schedstat)."""
        total = 0
        for task in Path(f"/proc/{self.popen.pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                continue  # A thread that ended between listing and reading.
        return total / 1e9

    def memory_kib(self, key: str) -> int:
        for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise KeyError(key)

    def stop(self) -> None:
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        self._log.close()


async def wait_serving(
    server: Server,
    stub: grpcv1.FunctionRunnerServiceStub,
    req: fnv1.RunFunctionRequest,
    timeout: float = 30.0,
) -> float:
    """Seconds from process start until it answers a RunFunction."""
    deadline = time.monotonic() + timeout
    while True:
        if server.popen.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.popen.returncode}")
        try:
            await stub.RunFunction(req, timeout=0.5, wait_for_ready=False)
            return time.monotonic() - server.started
        except grpc.aio.AioRpcError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.005)


@dataclass(frozen=True)
class Run:
    """Calls made, the server CPU they took, and the client-side latencies."""

    calls: int
    seconds: float
    cpu_seconds: float
    latencies: list[float]

    @property
    def cpu_ms_per_call(self) -> float:
        return self.cpu_seconds / self.calls * 1e3

    @property
    def calls_per_second(self) -> float:
        return self.calls / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3

    @classmethod
    def combined(cls, runs: Sequence[Run]) -> Run:
        """Runs of the same calls taken in turns with another server's, as one."""
        return cls(
            sum(r.calls for r in runs),
            sum(r.seconds for r in runs),
            sum(r.cpu_seconds for r in runs),
            [latency for r in runs for latency in r.latencies],
        )

    def summary(self) -> dict[str, float]:
        return {
            "calls": self.calls,
            "cpu_ms_per_call": round(self.cpu_ms_per_call, 4),
            "p50_ms": round(self.percentile(0.50), 3),
            "p99_ms": round(self.percentile(0.99), 3),
            "calls_per_second": round(self.calls_per_second, 1),
        }


async def closed_loop(
    server: Server,
    stub: grpcv1.FunctionRunnerServiceStub,
    pick: Callable[[int], fnv1.RunFunctionRequest],
    *,
    concurrency: int,
    calls: int = 0,
    seconds: float = 0.0,
) -> Run:
    """`concurrency` callers back to back, for `calls` calls or `seconds` seconds."""
    latencies: list[float] = []
    count = 0
    end = time.monotonic() + seconds

    async def caller() -> None:
        nonlocal count
        while (count < calls) if calls else (time.monotonic() < end):
            i = count
            count += 1
            start = time.perf_counter()
            await stub.RunFunction(pick(i))
            latencies.append(time.perf_counter() - start)

    cpu, start = server.cpu_seconds(), time.monotonic()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return Run(len(latencies), time.monotonic() - start, server.cpu_seconds() - cpu, latencies)


async def open_loop(
    server: Server,
    stub: grpcv1.FunctionRunnerServiceStub,
    pick: Callable[[int], fnv1.RunFunctionRequest],
    *,
    rate: float,
    seconds: float,
) -> Run:
    """Calls started at a fixed rate whatever the answers take, as Crossplane's workers do."""
    latencies: list[float] = []

    async def call(req: fnv1.RunFunctionRequest) -> None:
        start = time.perf_counter()
        await stub.RunFunction(req)
        latencies.append(time.perf_counter() - start)

    total = int(rate * seconds)
    cpu, begin = server.cpu_seconds(), time.monotonic()
    tasks = []
    for i in range(total):
        delay = begin + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(call(pick(i))))
    await asyncio.gather(*tasks)
    return Run(total, time.monotonic() - begin, server.cpu_seconds() - cpu, latencies)


def python() -> str:
    return sys.executable
