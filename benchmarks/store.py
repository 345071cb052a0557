"""Cases on disk, so that the floor server process answers exactly what was measured."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Case:
    """One request the benchmark sends, and the response function-cozyplane gives to it."""

    label: str
    kind: str
    request: bytes
    response: bytes
    composed: int
    series: str = ""
    x: int = 0


def write_cases(path: Path, cases: list[Case]) -> None:
    docs = [
        asdict(c)
        | {
            "request": base64.b64encode(c.request).decode(),
            "response": base64.b64encode(c.response).decode(),
        }
        for c in cases
    ]
    path.write_text(json.dumps(docs))


def read_cases(path: Path) -> list[Case]:
    docs = json.loads(path.read_text())
    return [
        Case(
            **(
                d
                | {
                    "request": base64.b64decode(d["request"]),
                    "response": base64.b64decode(d["response"]),
                }
            )
        )
        for d in docs
    ]
