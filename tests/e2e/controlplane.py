"""A real Crossplane control plane as local processes, without Docker.

etcd, kube-apiserver, kube-controller-manager (garbage collection and namespace
deletion) and Crossplane core run on 127.0.0.1 from binaries built from pinned Go
modules (tools/build.sh); function-cozyplane serves mTLS with a CA made at start.
Crossplane runs with `--package-runtime=External`: the function is registered as a
paused FunctionRevision whose status endpoint points at the local server.

Run `python -m tests.e2e.controlplane` to start one and experiment; Ctrl-C stops it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import crds_dir
from tests.support.crank import bare_crd, tool
from tests.support.pki import CA, LOCAL, new_key, private_pem, public_pem
from tests.support.schemas import crd_files

ROOT = Path(__file__).resolve().parents[2]
FUNCTION = "function-cozyplane"
START_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def wait_for(
    what: str, check: Callable[[], bool], timeout: float = START_TIMEOUT, every: float = 0.5
) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as err:  # A check that errors has not succeeded yet.
            last = err
        time.sleep(every)
    raise TimeoutError(
        f"timed out after {timeout:.0f}s waiting for {what}" + (f": {last}" if last else "")
    )


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)


def crossplane_crds() -> Path:
    """Crossplane core's own CRDs, shipped in its Go module (cluster/crds)."""
    result = subprocess.run(
        ["go", "list", "-m", "-f", "{{.Dir}}", "github.com/crossplane/crossplane/v2"],
        cwd=ROOT / "tools" / "crossplane",
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(result.stdout.strip()) / "cluster" / "crds"


@dataclass
class ControlPlane:
    """Start with `start()`, always `stop()`; logs stay in `run_dir`."""

    run_dir: Path
    ports: dict[str, int] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)

    @property
    def kubeconfig(self) -> Path:
        return self.run_dir / "admin.kubeconfig"

    @property
    def function_address(self) -> str:
        return f"127.0.0.1:{self.ports['function']}"

    def _spawn(
        self, name: str, args: list[str | Path], env: dict[str, str] | None = None
    ) -> Process:
        log = self.run_dir / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        handle = log.open("ab")
        popen = subprocess.Popen(
            [str(a) for a in args],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def _pki(self) -> None:
        pki = self.run_dir / "pki"
        ca = CA("cozyplane-e2e-ca")
        pki.mkdir(parents=True, exist_ok=True)
        (pki / "ca.crt").write_bytes(ca.pem)
        for name, pair in {
            "apiserver": ca.issue(
                "kube-apiserver", server=True, hosts=(*LOCAL, "kubernetes.default.svc")
            ),
            "admin": ca.issue("admin", server=False, organization="system:masters"),
        }.items():
            (pki / f"{name}.crt").write_bytes(pair.cert)
            (pki / f"{name}.key").write_bytes(pair.key)
        ca.write(pki / "crossplane-client", ca.issue("crossplane", server=False))
        ca.write(pki / "function", ca.issue(FUNCTION, server=True, hosts=LOCAL))
        signing = new_key()
        (pki / "sa.key").write_bytes(private_pem(signing))
        (pki / "sa.pub").write_bytes(public_pem(signing))
        server = f"https://127.0.0.1:{self.ports['apiserver']}"
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "e2e",
                            "cluster": {
                                "server": server,
                                "certificate-authority": str(pki / "ca.crt"),
                            },
                        }
                    ],
                    "users": [
                        {
                            "name": "admin",
                            "user": {
                                "client-certificate": str(pki / "admin.crt"),
                                "client-key": str(pki / "admin.key"),
                            },
                        }
                    ],
                    "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "admin"}}],
                    "current-context": "e2e",
                }
            )
        )

    def _https_ok(self, url: str) -> bool:
        pki = self.run_dir / "pki"
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        context.load_cert_chain(pki / "admin.crt", pki / "admin.key")
        with urllib.request.urlopen(url, context=context, timeout=5) as response:
            return bool(response.status == 200)

    def _http_ok(self, url: str) -> bool:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)

    def merge_patch(
        self,
        resource: str,
        name: str,
        namespace: str | None,
        patch: dict[str, Any],
        *,
        check: bool = True,
        subresource: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """`kubectl patch --type=merge`: the API server's answer, refusals included."""
        args = ["patch", resource, name, "--type=merge", "-p", json.dumps(patch)]
        if namespace is not None:
            args += ["-n", namespace]
        if subresource is not None:
            args.append(f"--subresource={subresource}")
        return self.kubectl(*args, check=check)

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(tool("kubectl")), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def start(self) -> None:
        for name in (
            "etcd-client",
            "etcd-peer",
            "apiserver",
            "kcm",
            "metrics",
            "health",
            "function",
        ):
            self.ports[name] = free_port()
        self._pki()
        pki = self.run_dir / "pki"
        etcd_url = f"http://127.0.0.1:{self.ports['etcd-client']}"
        peer_url = f"http://127.0.0.1:{self.ports['etcd-peer']}"
        self._spawn(
            "etcd",
            [
                tool("etcd"),
                "--name",
                "e2e",
                "--data-dir",
                self.run_dir / "etcd",
                "--unsafe-no-fsync",
                "--log-level",
                "warn",
                "--listen-client-urls",
                etcd_url,
                "--advertise-client-urls",
                etcd_url,
                "--listen-peer-urls",
                peer_url,
                "--initial-advertise-peer-urls",
                peer_url,
                "--initial-cluster",
                f"e2e={peer_url}",
                "--listen-metrics-urls",
                "",
            ],
        )
        wait_for("etcd", lambda: self._http_ok(f"{etcd_url}/health"))

        apiserver = f"https://127.0.0.1:{self.ports['apiserver']}"
        self._spawn(
            "kube-apiserver",
            [
                tool("kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.ports['apiserver']}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--authorization-mode=RBAC",
                f"--service-account-issuer={apiserver}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--disable-admission-plugins=ServiceAccount",
                "--endpoint-reconciler-type=none",
                "--profiling=false",
            ],
        )
        wait_for("kube-apiserver", lambda: self._https_ok(f"{apiserver}/readyz"))

        self._spawn(
            "kube-controller-manager",
            [
                tool("kube-controller-manager"),
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--controllers=garbage-collector-controller,namespace-controller,"
                "persistentvolumeclaim-protection-controller",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.ports['kcm']}",
                "--use-service-account-credentials=false",
            ],
        )

        env = {
            "KUBECONFIG": str(self.kubeconfig),
            "POD_NAMESPACE": "crossplane-system",
            "POD_SERVICE_ACCOUNT": "crossplane",
            "ENABLE_WEBHOOKS": "false",
            "TLS_CA_SECRET_NAME": "crossplane-root-ca",
            "TLS_CLIENT_SECRET_NAME": "crossplane-tls-client",
        }
        self.kubectl("create", "namespace", "crossplane-system")
        # init applies Crossplane's CRDs, then objects of them; it may run before the API
        # server serves the new kinds, so it is retried (it is idempotent).
        init_log = self.run_dir / "logs" / "crossplane-init.log"
        for _ in range(10):
            init = subprocess.run(
                [str(tool("crossplane")), "core", "init"],
                env={**os.environ, **env, "CRDS_PATH": str(crossplane_crds())},
                capture_output=True,
                text=True,
                timeout=180,
                check=False,
            )
            with init_log.open("a") as log:
                log.write(init.stdout + init.stderr)
            if init.returncode == 0:
                break
            time.sleep(2)
        else:
            raise RuntimeError(f"crossplane core init failed, see {init_log}")
        self.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=120s")
        self._spawn(
            "crossplane",
            [
                tool("crossplane"),
                "core",
                "start",
                "--debug",
                "--package-runtime=External",
                f"--cache-dir={self.run_dir / 'xpkg-cache'}",
                "--poll-interval=10s",
            ],
            env
            | {
                "TLS_CLIENT_CERTS_DIR": str(pki / "crossplane-client"),
                "METRICS_PORT": str(self.ports["metrics"]),
                "HEALTH_PROBE_PORT": str(self.ports["health"]),
            },
        )
        wait_for(
            "crossplane", lambda: self._http_ok(f"http://127.0.0.1:{self.ports['health']}/readyz")
        )

        self._spawn(
            "function-cozyplane",
            [
                sys.executable,
                "-m",
                "functions",
                "serve",
                "--address",
                self.function_address,
                "--tls-certs-dir",
                pki / "function",
                "--debug",
            ],
        )
        wait_for("function-cozyplane", lambda: port_open(self.ports["function"]))
        self.register_function()

    def register_function(self) -> None:
        """What Crossplane's package manager would do: an active revision with an endpoint."""
        paused = {"crossplane.io/paused": "true"}
        self.kubectl(
            "apply",
            "-f",
            "-",
            stdin=yaml.safe_dump_all(
                [
                    {
                        "apiVersion": "pkg.crossplane.io/v1",
                        "kind": "Function",
                        "metadata": {"name": FUNCTION, "annotations": paused},
                        "spec": {"package": f"xpkg.cozyplane.local/{FUNCTION}:v0.0.0"},
                    },
                    {
                        "apiVersion": "pkg.crossplane.io/v1",
                        "kind": "FunctionRevision",
                        "metadata": {
                            "name": f"{FUNCTION}-local",
                            "annotations": paused,
                            "labels": {"pkg.crossplane.io/package": FUNCTION},
                        },
                        "spec": {
                            "image": f"xpkg.cozyplane.local/{FUNCTION}:v0.0.0",
                            "desiredState": "Active",
                            "revision": 1,
                            "ignoreCrossplaneConstraints": True,
                            "skipDependencyResolution": True,
                        },
                    },
                ]
            ),
        )
        patch = {
            "status": {
                "endpoint": f"dns:///{self.function_address}",
                "capabilities": ["composition"],
            }
        }
        self.merge_patch("functionrevision", f"{FUNCTION}-local", None, patch, subresource="status")

    def install(self, crds_dir: Path) -> None:
        """The operators' CRDs, cozyplane's RBAC, XRDs and Compositions, and tenant-root."""
        docs: list[dict[str, Any]] = []
        for path in crd_files(crds_dir):
            if path.name.endswith(".openAPIV3Schema.yaml"):
                docs.append(bare_crd(path))
            else:
                docs += [d for d in yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader) if d]
        crds = [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
        for crd in crds:
            # No webhooks run here (as with Crossplane's own): convert nothing.
            if crd["spec"].get("conversion", {}).get("strategy") == "Webhook":
                crd["spec"]["conversion"] = {"strategy": "None"}
        # Server-side apply: several CRDs are too big for the last-applied annotation.
        self.kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(crds))
        self.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=120s")
        for folder in ("package/rbac", "package/function/input", "xrds", "compositions"):
            self.kubectl("apply", "--server-side", "-f", str(ROOT / folder))
        self.kubectl("wait", "--for=condition=Established", "xrd", "--all", "--timeout=120s")
        self.kubectl("wait", "--for=condition=Offered", "xrd", "--all", "--timeout=120s")
        self.kubectl("apply", "-f", str(ROOT / "examples" / "environment" / "tenant-root.yaml"))

    def restart(
        self, name: str, *, kill: bool = False, while_down: Callable[[], None] | None = None
    ) -> None:
        """Stop one process (SIGKILL when `kill`, else SIGTERM), run `while_down`, and start
        it again with the same command line; returns once it serves again."""
        process = next(p for p in self.processes if p.name == name)
        if kill:
            process.popen.kill()
            process.popen.wait(timeout=15)
        else:
            process.stop()
        self.processes.remove(process)
        if while_down is not None:
            while_down()
        args = process.popen.args
        assert isinstance(args, list)
        self._spawn(name, args)
        if name == "kube-apiserver":
            url = f"https://127.0.0.1:{self.ports['apiserver']}/readyz"
            wait_for(name, lambda: self._https_ok(url))
        elif name == "function-cozyplane":
            wait_for(name, lambda: port_open(self.ports["function"]))

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def logs_tail(self, lines: int = 40) -> str:
        parts = []
        for log in sorted((self.run_dir / "logs").glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"== {log.name}\n" + "\n".join(tail))
        return "\n".join(parts)


@contextlib.contextmanager
def running(run_dir: Path | None = None) -> Iterator[ControlPlane]:
    """A started control plane, torn down on exit whatever happens; prints where logs are."""
    path = run_dir or Path(tempfile.mkdtemp(prefix="cozyplane-e2e-"))
    plane = ControlPlane(path)
    print(f"control plane logs: {path / 'logs'}", file=sys.stderr)
    try:
        plane.start()
        yield plane
    finally:
        plane.stop()
        print(f"control plane stopped; logs kept in {path / 'logs'}", file=sys.stderr)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    # `kill` stops everything as Ctrl-C does, instead of orphaning the processes.
    signal.signal(signal.SIGTERM, _interrupt)
    with running() as plane:
        plane.install(crds_dir())
        print(f"export KUBECONFIG={plane.kubeconfig}")
        print("Crossplane and function-cozyplane are running; Ctrl-C stops everything.")
        with contextlib.suppress(KeyboardInterrupt):
            while all(p.alive() for p in plane.processes):
                time.sleep(1)


if __name__ == "__main__":
    main()
