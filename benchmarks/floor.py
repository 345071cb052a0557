"""The floor: a function on the same server and options that only looks its answer up.

It returns, for each request, the response function-cozyplane gave to it (pre-built and
keyed by the request tag), so it pays for gRPC, TLS, parsing the request and writing the
response of the same size, and nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import grpc
from crossplane.function import cli as sdkcli
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1

from benchmarks.store import read_cases
from functions import serving


class FloorRunner(grpcv1.FunctionRunnerServiceServicer):
    def __init__(self, responses: dict[str, fnv1.RunFunctionResponse]) -> None:
        self.responses = responses

    async def RunFunction(
        self, req: fnv1.RunFunctionRequest, _: grpc.aio.ServicerContext | None
    ) -> fnv1.RunFunctionResponse:
        return self.responses[req.meta.tag]


@click.command()
@click.option("--cases", "cases_file", type=click.Path(exists=True, path_type=Path), required=True)
@sdkcli.standard_options
def main(cases_file: Path, **options: Any) -> None:
    """Serve the floor for the cases in CASES_FILE."""
    responses = {}
    for case in read_cases(cases_file):
        req = fnv1.RunFunctionRequest.FromString(case.request)
        responses[req.meta.tag] = fnv1.RunFunctionResponse.FromString(case.response)
    serving.run(FloorRunner(responses), **options)


if __name__ == "__main__":
    main()
