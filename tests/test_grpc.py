"""`cozyplane serve` over real gRPC: mTLS by default, plaintext only when asked."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import socket
import subprocess
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1
from crossplane.function.proto.v1beta1 import run_function_pb2 as fnv1beta1
from crossplane.function.proto.v1beta1 import run_function_pb2_grpc as grpcv1beta1
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from benchmarks import workload
from functions import serving
from functions.api.kinds import POSTGRES
from functions.render import request, to_composite
from functions.runner import FunctionRunner
from tests.conftest import ROOT, counter_passwords
from tests.support.pki import CA, LOCAL, Pair

CLAIM = {
    "apiVersion": "cozyplane.io/v1alpha1",
    "kind": "Postgres",
    "metadata": {"name": "db", "namespace": "tenant-dev"},
    "spec": {},
}
READY_TIMEOUT = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(*args: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    address = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "functions", "serve", "--address", address, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        yield address, proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def stub(channel: grpc.Channel) -> Any:
    return grpcv1.FunctionRunnerServiceStub(channel)  # type: ignore[no-untyped-call]


def postgres_request() -> fnv1.RunFunctionRequest:
    return request(to_composite(CLAIM, POSTGRES), {}, [], {}, None)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[CA, Pair, Path]:
    ca = CA()
    server = ca.issue("function-cozyplane", server=True, hosts=LOCAL)
    client = ca.issue("crossplane", server=False)
    return ca, client, ca.write(tmp_path_factory.mktemp("server"), server)


def _secure_channel(address: str, ca: CA, client: Pair | None) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(
        root_certificates=ca.pem,
        private_key=client.key if client else None,
        certificate_chain=client.cert if client else None,
    )
    return grpc.secure_channel(address, creds)


def test_mtls_serves_clients_with_a_certificate(pki: tuple[CA, Pair, Path]) -> None:
    ca, client, certs = pki
    with serve("--tls-certs-dir", str(certs)) as (address, _):
        channel = _secure_channel(address, ca, client)
        grpc.channel_ready_future(channel).result(timeout=READY_TIMEOUT)
        rsp = stub(channel).RunFunction(postgres_request(), timeout=10)
        assert rsp.desired.resources["cluster"].resource["metadata"]["name"] == "postgres-db"
        beta = fnv1beta1.RunFunctionRequest()
        beta.ParseFromString(postgres_request().SerializeToString())
        beta_stub = grpcv1beta1.FunctionRunnerServiceStub(channel)  # type: ignore[no-untyped-call]
        beta_rsp = beta_stub.RunFunction(beta, timeout=10)
        assert "cluster" in beta_rsp.desired.resources


def test_mtls_refuses_clients_without_a_certificate(pki: tuple[CA, Pair, Path]) -> None:
    ca, client, certs = pki
    with serve("--tls-certs-dir", str(certs)) as (address, _):
        good = _secure_channel(address, ca, client)
        grpc.channel_ready_future(good).result(timeout=READY_TIMEOUT)
        bad = _secure_channel(address, ca, None)
        with pytest.raises(grpc.RpcError) as err:
            stub(bad).RunFunction(postgres_request(), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        plain = grpc.insecure_channel(address)
        with pytest.raises(grpc.RpcError):
            stub(plain).RunFunction(postgres_request(), timeout=5)


def test_insecure_only_when_asked() -> None:
    with serve("--insecure") as (address, _):
        channel = grpc.insecure_channel(address)
        grpc.channel_ready_future(channel).result(timeout=READY_TIMEOUT)
        rsp = stub(channel).RunFunction(postgres_request(), timeout=10)
        assert "cluster" in rsp.desired.resources


def test_serving_without_certificates_or_insecure_is_refused() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "functions", "serve", "--address", f"127.0.0.1:{free_port()}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "--tls-certs-dir" in result.stderr
    assert "--insecure" in result.stderr


def test_insecure_serves_reflection_and_rejects_bytes_that_are_no_request() -> None:
    with serve("--insecure") as (address, _):
        channel = grpc.insecure_channel(address)
        grpc.channel_ready_future(channel).result(timeout=READY_TIMEOUT)
        asked = reflection_pb2.ServerReflectionRequest(list_services="")
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        listing = reflect.ServerReflectionInfo(iter([asked]), timeout=10)
        names = {s.name for r in listing for s in r.list_services_response.service}
        assert set(serving.SERVICES) <= names
        raw = channel.unary_unary(f"/{serving.SERVICES[0]}/RunFunction")
        with pytest.raises(grpc.RpcError) as err:
            raw(b"\xff\xff\xff", timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details().startswith("not a RunFunctionRequest: ")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_serving_cleanly(sig: signal.Signals) -> None:
    with serve("--insecure") as (address, proc):
        channel = grpc.insecure_channel(address)
        grpc.channel_ready_future(channel).result(timeout=READY_TIMEOUT)
        assert (
            "cluster" in stub(channel).RunFunction(postgres_request(), timeout=10).desired.resources
        )
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
        assert proc.stdout is not None
        output = proc.stdout.read().decode()
        assert "Traceback" not in output
        assert "never awaited" not in output


class _Details:
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


def test_run_function_takes_and_gives_bytes() -> None:
    """Both versions' RunFunction parse, compose and serialise in one step: nothing parsed
    is kept while the answer waits to be sent (see functions/serving.py)."""
    req = postgres_request()
    expected = asyncio.run(FunctionRunner(counter_passwords()).RunFunction(req, None))
    for i, service in enumerate(serving.SERVICES):
        handler = serving.handlers(FunctionRunner(counter_passwords()))[i]
        method = handler.service(_Details(f"/{service}/RunFunction"))
        assert method.request_deserializer is None
        assert method.response_serializer is None
        answer = asyncio.run(method.unary_unary(req.SerializeToString(), None))
        assert fnv1.RunFunctionResponse.FromString(answer) == expected


def _minor_faults(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])


def test_calls_reuse_freed_memory() -> None:
    """A call faults in fewer pages than its request takes on the wire: freed blocks are
    reused, not handed back to the kernel and faulted in again (about 1,000 pages a call
    without serving.keep_freed_memory, 110 to 170 with it, for a 294-page request)."""
    claim = next(c for label, n, c in workload.series() if label.endswith("groups") and n == 100)
    req = fnv1.RunFunctionRequest.FromString(workload.steady(claim, "100 node groups").request)
    pages = len(req.SerializeToString()) // 4096
    with serve("--insecure") as (address, proc):
        channel = grpc.insecure_channel(address)
        grpc.channel_ready_future(channel).result(timeout=READY_TIMEOUT)
        for _ in range(3):
            stub(channel).RunFunction(req, timeout=30)
        before = _minor_faults(proc.pid)
        calls = 10
        for _ in range(calls):
            stub(channel).RunFunction(req, timeout=30)
        assert (_minor_faults(proc.pid) - before) / calls < pages


def test_startup_heap_is_left_out_of_collections() -> None:
    """What is alive at start-up moves out of the collector's walks; cycles made later are
    still freed."""

    class Node:
        other: Any = None

    try:
        walked = len(gc.get_objects())
        serving.freeze_startup_heap()
        assert gc.get_freeze_count() > walked // 2
        assert len(gc.get_objects()) < walked // 100
        a, b = Node(), Node()
        a.other, b.other = b, a
        cycle = weakref.ref(a)
        del a, b
        gc.collect()
        assert cycle() is None
    finally:
        gc.unfreeze()
