"""Configuration files written into composed objects: deterministic YAML, fast."""

from __future__ import annotations

import io
from functools import lru_cache
from typing import Any

import yaml
from yaml.events import (
    DocumentEndEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from yaml.nodes import Node, ScalarNode

# libyaml's emitter writes the same text as PyYAML's pure-Python one, ten times faster.
_BASE: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"


@lru_cache(maxsize=1024)
def _implicit(value: str, implicit: tuple[bool, bool]) -> str:
    """The tag a scalar's text resolves to. The emitter asks twice per scalar whether its
    plain text would read back as another type; configuration values repeat."""
    return str(_BASE.resolve(_RESOLVER, ScalarNode, value, implicit))


class _Dumper(_BASE):  # type: ignore[misc]
    def resolve(self, kind: type[Node], value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode and isinstance(value, str):
            return _implicit(value, implicit)
        return str(super().resolve(kind, value, implicit))


_RESOLVER = _BASE(io.StringIO())


class _UnusualError(Exception):
    """A value the event writer leaves to PyYAML: a float, a subclass, an object met twice
    (PyYAML writes it as an anchor and aliases)."""


def _events(data: Any, out: list[Event], seen: set[int], sort_keys: bool) -> None:
    """The events PyYAML's SafeRepresenter and serializer make of `data` (block style),
    without building its node graph and resolving each scalar twice."""
    kind = type(data)
    if kind is str:
        out.append(ScalarEvent(None, _STR, (_implicit(data, (True, False)) == _STR, True), data))
    elif kind is dict or kind is list:
        if id(data) in seen:
            raise _UnusualError
        seen.add(id(data))
        if kind is dict:
            out.append(MappingStartEvent(None, _MAP, True, flow_style=False))
            for key, value in sorted(data.items()) if sort_keys else data.items():
                _events(key, out, seen, sort_keys)
                _events(value, out, seen, sort_keys)
            out.append(MappingEndEvent())
        else:
            out.append(SequenceStartEvent(None, _SEQ, True, flow_style=False))
            for value in data:
                _events(value, out, seen, sort_keys)
            out.append(SequenceEndEvent())
    elif kind is bool or kind is int or data is None:
        tag, value = (
            (_BOOL, "true" if data else "false")
            if kind is bool
            else (_INT, str(data))
            if kind is int
            else (_NULL, "null")
        )
        out.append(ScalarEvent(None, tag, (_implicit(value, (True, False)) == tag, False), value))
    else:
        raise _UnusualError


def to_yaml(document: Any, *, sort_keys: bool = True, width: int = 80) -> str:
    """`document` as block YAML, byte for byte as `yaml.dump` with libyaml's safe dumper."""
    events: list[Event] = []
    try:
        _events(document, events, set(), sort_keys)
    except _UnusualError:
        text: str = yaml.dump(
            document, Dumper=_Dumper, default_flow_style=False, width=width, sort_keys=sort_keys
        )
        return text
    stream = io.StringIO()
    dumper = _Dumper(stream, default_flow_style=False, width=width, sort_keys=sort_keys)
    try:
        dumper.open()
        dumper.emit(DocumentStartEvent(explicit=None, version=None, tags=None))
        for event in events:
            dumper.emit(event)
        dumper.emit(DocumentEndEvent(explicit=None))
        dumper.close()
    finally:
        dumper.dispose()
    return stream.getvalue()
