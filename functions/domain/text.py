"""Configuration files written into composed objects: deterministic YAML, fast."""

from __future__ import annotations

from typing import Any

import yaml

# libyaml's emitter writes the same text as PyYAML's pure-Python one, ten times faster.
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def to_yaml(document: Any, *, sort_keys: bool = True, width: int = 80) -> str:
    """`document` as block YAML, as `yaml.safe_dump` writes it."""
    text: str = yaml.dump(
        document, Dumper=_DUMPER, sort_keys=sort_keys, width=width, default_flow_style=False
    )
    return text
