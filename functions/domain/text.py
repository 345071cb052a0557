"""Configuration files written into composed objects: deterministic YAML, fast."""

from __future__ import annotations

import io
from functools import lru_cache
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

# libyaml's emitter writes the same text as PyYAML's pure-Python one, ten times faster.
_BASE: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"


class _Dumper(_BASE):  # type: ignore[misc]
    # The emitter asks twice per scalar whether its plain text would read back as another
    # type; configuration values repeat, and the answer depends on nothing else.
    @staticmethod
    @lru_cache(maxsize=1024)
    def _implicit(value: str, implicit: tuple[bool, bool]) -> str:
        return str(_BASE.resolve(_RESOLVER, ScalarNode, value, implicit))

    def resolve(self, kind: type[Node], value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode and isinstance(value, str):
            return self._implicit(value, implicit)
        return str(super().resolve(kind, value, implicit))


_RESOLVER = _BASE(io.StringIO())


def _node(data: Any, dumper: Any, seen: dict[int, Node], sort_keys: bool) -> Node:
    """The node SafeRepresenter makes of `data` (with default_flow_style=False), without its
    per-value type dispatch. A dict or list met twice is the same node, so it gets the same
    anchor and alias; other types are left to the representer itself."""
    kind = type(data)
    if kind is str:
        return ScalarNode(_STR, data)
    if kind is dict or kind is list:
        if id(data) in seen:
            return seen[id(data)]
        if kind is dict:
            node: Node = MappingNode(_MAP, [], flow_style=False)
            seen[id(data)] = node
            items = sorted(data.items()) if sort_keys else data.items()
            node.value = [
                (_node(k, dumper, seen, sort_keys), _node(v, dumper, seen, sort_keys))
                for k, v in items
            ]
        else:
            node = SequenceNode(_SEQ, [], flow_style=False)
            seen[id(data)] = node
            node.value = [_node(v, dumper, seen, sort_keys) for v in data]
        return node
    if kind is bool:
        return ScalarNode(_BOOL, "true" if data else "false")
    if kind is int:
        return ScalarNode(_INT, str(data))
    if data is None:
        return ScalarNode(_NULL, "null")
    node = dumper.represent_data(data)
    assert isinstance(node, Node)
    return node


def to_yaml(document: Any, *, sort_keys: bool = True, width: int = 80) -> str:
    """`document` as block YAML, byte for byte as `yaml.dump` with libyaml's safe dumper."""
    stream = io.StringIO()
    dumper = _Dumper(stream, default_flow_style=False, width=width, sort_keys=sort_keys)
    try:
        dumper.open()
        dumper.serialize(_node(document, dumper, {}, sort_keys))
        dumper.close()
    finally:
        dumper.dispose()
    return stream.getvalue()
