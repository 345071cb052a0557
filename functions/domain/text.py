"""Configuration files written into composed objects: deterministic YAML, fast."""

from __future__ import annotations

import io
import re
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


# Events depend on their scalar's text alone, and the emitter only reads them: one object
# each serves every document. Short strings repeat (keys, settings); long ones (keys of
# certificates, tokens) are made for each use rather than kept.
_MAP_START = MappingStartEvent(None, _MAP, True, flow_style=False)
_MAP_END = MappingEndEvent()
_SEQ_START = SequenceStartEvent(None, _SEQ, True, flow_style=False)
_SEQ_END = SequenceEndEvent()
_SHORT = 64
_KEPT = 4096
_SCALARS: dict[str, ScalarEvent] = {}


def _keep(cache: dict[str, Any], value: str, made: Any) -> None:
    """Remember what was made of a short string, in a cache of bounded size."""
    if len(value) <= _SHORT:
        if len(cache) >= _KEPT:
            cache.clear()
        cache[value] = made


def _string(value: str) -> ScalarEvent:
    event = _SCALARS.get(value)
    if event is None:
        event = ScalarEvent(None, _STR, (_implicit(value, (True, False)) == _STR, True), value)
        _keep(_SCALARS, value, event)
    return event


@lru_cache(maxsize=256)
def _other(tag: str, value: str) -> ScalarEvent:
    return ScalarEvent(None, tag, (_implicit(value, (True, False)) == tag, False), value)


def _events(data: Any, out: list[Event], seen: set[int], sort_keys: bool) -> None:
    """The events PyYAML's SafeRepresenter and serializer make of `data` (block style),
    without building its node graph and resolving each scalar twice."""
    kind = type(data)
    if kind is str:
        out.append(_string(data))
    elif kind is dict or kind is list:
        if id(data) in seen:
            raise _UnusualError
        seen.add(id(data))
        if kind is dict:
            out.append(_MAP_START)
            for key, value in sorted(data.items()) if sort_keys else data.items():
                _events(key, out, seen, sort_keys)
                _events(value, out, seen, sort_keys)
            out.append(_MAP_END)
        else:
            out.append(_SEQ_START)
            for value in data:
                _events(value, out, seen, sort_keys)
            out.append(_SEQ_END)
    elif kind is bool:
        out.append(_other(_BOOL, "true" if data else "false"))
    elif kind is int:
        out.append(_other(_INT, str(data)))
    elif data is None:
        out.append(_other(_NULL, "null"))
    else:
        raise _UnusualError


# Text libyaml writes as it is, whatever the width: printable ASCII without spaces, quotes,
# flow indicators, comment marks or a leading indicator ("-", ":", "%", "@"), not "..."
# (a document end) and not ending in ":" (a key). Keys are simple up to 128 characters.
_PLAIN = re.compile(r"(?!\.\.\.)[A-Za-z0-9_./+=][A-Za-z0-9_./+=%@:-]*(?<!:)")
_SIMPLE_KEY = 128
_WRITTEN: dict[str, str] = {}


def _scalar(value: str) -> str:
    """A string as libyaml writes it in block context: plain, or single-quoted where its
    plain text would read back as another type ("true", "1.5", "~")."""
    text = _WRITTEN.get(value)
    if text is None:
        if not _PLAIN.fullmatch(value):
            raise _UnusualError
        text = value if _implicit(value, (True, False)) == _STR else f"'{value}'"
        _keep(_WRITTEN, value, text)
    return text


def _inline(value: Any, seen: set[int]) -> str | None:
    """A value written on its key's or dash's line; None for a collection with items."""
    kind = type(value)
    if kind is str:
        return _scalar(value)
    if kind is dict or kind is list:
        if value:
            return None
        if id(value) in seen:  # PyYAML writes an anchor and an alias, even for {}.
            raise _UnusualError
        seen.add(id(value))
        return "{}" if kind is dict else "[]"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        text = str(value)
        if _implicit(text, (True, False)) != _INT:
            raise _UnusualError
        return text
    if value is None:
        return "null"
    raise _UnusualError


def _block(data: Any, first: str, indent: str, out: list[str], seen: set[int], sort: bool) -> None:
    """A non-empty mapping or sequence in block style, as libyaml lays it out: its first
    line starts with `first` (a parent's dashes), the others with `indent`; a sequence
    in a mapping is not indented further."""
    if id(data) in seen:
        raise _UnusualError
    seen.add(id(data))
    lead = first
    if type(data) is dict:
        for key, value in sorted(data.items()) if sort else data.items():
            if type(key) is not str or len(key) > _SIMPLE_KEY:
                raise _UnusualError
            text = _inline(value, seen)
            if text is not None:
                out.append(f"{lead}{_scalar(key)}: {text}\n")
            else:
                out.append(f"{lead}{_scalar(key)}:\n")
                if type(value) is dict:
                    _block(value, indent + "  ", indent + "  ", out, seen, sort)
                else:
                    _block(value, indent, indent, out, seen, sort)
            lead = indent
    else:
        for value in data:
            text = _inline(value, seen)
            if text is not None:
                out.append(f"{lead}- {text}\n")
            else:
                _block(value, lead + "- ", indent + "  ", out, seen, sort)
            lead = indent


def to_yaml(document: Any, *, sort_keys: bool = True, width: int = 80) -> str:
    """`document` as block YAML, byte for byte as `yaml.dump` with libyaml's safe dumper.

    Configuration files mostly hold names, paths, images and numbers, which libyaml writes
    without quoting or folding: those are written here directly. Anything else goes to
    libyaml's emitter, from the events PyYAML would make."""
    if document and type(document) in (dict, list):
        lines: list[str] = []
        try:
            _block(document, "", "", lines, set(), sort_keys)
            return "".join(lines)
        except _UnusualError:
            pass
    return emitted(document, sort_keys=sort_keys, width=width)


def emitted(document: Any, *, sort_keys: bool, width: int) -> str:
    """`document` written by libyaml's emitter: from events made here when it holds only
    what configuration files hold, else by PyYAML itself."""
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
