"""The gRPC server: the SDK's runtime.serve, with RunFunction taking and giving bytes.

The SDK's generated handler parses a request before the servicer runs and keeps both the
parsed request and the response until the answer has been sent. Parsed, a request takes
about five times its wire size (6.4 MiB for the 1.2 MiB request of 100 node groups), so
16 calls waiting on the network held up to 150 MiB. Here the servicer takes the request's
bytes and gives the answer's (functions/runner.py parses only what is not a composed
object), and only bytes wait to be sent.

Freed memory is kept for the next call (see keep_freed_memory): glibc hands a large
request's blocks back to the kernel when they are freed, and faulting them in again cost
a 100-node-group call 2,000 page faults (16 calls at a time) and 15% more CPU.

What start-up leaves in the heap is frozen out of the garbage collector (see
freeze_startup_heap): a call promotes its short-lived objects often enough to trigger
full collections, and each of those walked some 50,000 objects of modules and schemas
that live as long as the process.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import signal
from typing import Any, Protocol

import click
import grpc
from crossplane.function import logging, runtime
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1beta1 import run_function_pb2 as fnv1beta1
from grpc_reflection.v1alpha import reflection

# v1beta1 messages are v1's on the wire (the SDK converts them by reserialising), so one
# handler serves both, as the SDK does for Crossplane releases before v1.
SERVICES = tuple(
    module.DESCRIPTOR.services_by_name["FunctionRunnerService"].full_name
    for module in (fnv1, fnv1beta1)
)
MEBIBYTE = 1024 * 1024
# mallopt(3) parameters, and what they are set to: blocks up to 4 MiB come from the heap,
# not mmap, and up to 8 MiB free at its top stay mapped, about what a call on a 1 MiB
# request frees. Larger settings saved no more CPU and kept more memory when idle.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
TRIM_THRESHOLD, MMAP_THRESHOLD = 8 * MEBIBYTE, 4 * MEBIBYTE


class NotARequestError(ValueError):
    """Bytes that are not a RunFunctionRequest; the reason is the message."""


class Servicer(Protocol):
    """A function: a RunFunctionRequest's wire bytes in, its response's out."""

    def run_wire(self, request: bytes) -> bytes:
        """Raises NotARequestError for bytes that are not a request."""
        ...


def handlers(servicer: Servicer) -> list[grpc.GenericRpcHandler]:
    async def run_function(data: bytes, context: grpc.aio.ServicerContext) -> bytes:
        try:
            return servicer.run_wire(data)
        except NotARequestError as err:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"not a RunFunctionRequest: {err}"
            )
            raise  # abort raises; this is for readers and type checkers.

    method = {"RunFunction": grpc.unary_unary_rpc_method_handler(run_function)}
    return [grpc.method_handlers_generic_handler(name, method) for name in SERVICES]


def keep_freed_memory() -> None:
    """Tune glibc's allocator to reuse freed blocks; a C library without mallopt is left
    as it is."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)


def freeze_startup_heap() -> None:
    """Collect what start-up left as garbage, then move every object alive into the
    collector's permanent generation, which its collections never walk. Cycles made by
    calls are still found and freed."""
    gc.collect()
    gc.freeze()


def run(
    servicer: Servicer,
    *,
    debug: bool,
    address: str,
    tls_certs_dir: str | None,
    insecure: bool,
    max_recv_message_size: int,
    max_send_message_size: int | None,
) -> None:
    """Serve until SIGTERM or SIGINT, with the SDK's standard options
    (`sdkcli.standard_options`): mTLS with the certificates in `tls_certs_dir`, or
    plaintext only when `insecure`, whatever certificates are given."""
    logging.configure(level=logging.Level.DEBUG if debug else logging.Level.INFO)
    send = max_recv_message_size if max_send_message_size is None else max_send_message_size
    options = [
        ("grpc.max_receive_message_length", max_recv_message_size * MEBIBYTE),
        ("grpc.max_send_message_length", send * MEBIBYTE),
    ]
    if insecure:
        creds = None
    elif tls_certs_dir:
        creds = runtime.load_credentials(tls_certs_dir)
    else:
        raise click.UsageError(
            "give --tls-certs-dir (tls.crt, tls.key, ca.crt) or ask for --insecure"
        )
    keep_freed_memory()
    asyncio.run(_serve(servicer, address, creds, options))


async def _serve(
    servicer: Servicer,
    address: str,
    creds: grpc.ServerCredentials | None,
    options: list[tuple[str, Any]],
) -> None:
    server = grpc.aio.server(options=options)
    server.add_generic_rpc_handlers(handlers(servicer))
    reflection.enable_server_reflection(runtime.SERVICE_NAMES, server)
    if creds is None:
        server.add_insecure_port(address)
    else:
        server.add_secure_port(address, creds)
    # SIGTERM (the kubelet) and SIGINT (a terminal) both let calls in flight finish.
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(
            sig,
            lambda: asyncio.ensure_future(server.stop(grace=runtime.SHUTDOWN_GRACE_PERIOD_SECONDS)),
        )
    await server.start()
    freeze_startup_heap()
    await server.wait_for_termination()
