"""`cozyplane serve` over real gRPC: mTLS by default, plaintext only when asked."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1
from crossplane.function.proto.v1beta1 import run_function_pb2 as fnv1beta1
from crossplane.function.proto.v1beta1 import run_function_pb2_grpc as grpcv1beta1

from functions.api.kinds import POSTGRES
from functions.render import request, to_composite
from tests.conftest import ROOT
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
