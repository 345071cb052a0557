"""The floor: a function on the same server and options that only looks its answer up.

It returns, for each request, the response function-cozyplane gave to it (pre-built and
keyed by the request tag), so it pays for gRPC, TLS, parsing the request and writing the
response of the same size, and nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from crossplane.function import cli as sdkcli
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from google.protobuf.message import DecodeError

from benchmarks.store import read_cases
from functions import serving


class FloorRunner:
    """Parses the request, as a function on the SDK does, and serialises its answer."""

    def __init__(self, responses: dict[str, fnv1.RunFunctionResponse]) -> None:
        self.responses = responses

    def run_wire(self, request: bytes) -> bytes:
        try:
            req = fnv1.RunFunctionRequest.FromString(request)
        except DecodeError as err:
            raise serving.NotARequestError(str(err)) from err
        answer: bytes = self.responses[req.meta.tag].SerializeToString()
        return answer


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
