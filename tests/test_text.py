"""Configuration files: the fast YAML writer writes exactly what PyYAML writes with libyaml's
safe dumper, as cozyplane did before it.

Talos machine configurations are immutable once applied (TalosConfigTemplate), so a
changed byte is a refused update, not a cosmetic difference.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from yaml.events import Event

from functions.domain import text
from functions.domain.text import to_yaml
from tests.support.fuzz import json_values

documents = st.recursive(
    json_values,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=20,
)
# What configuration files hold: the types the event writer handles itself, with text
# that reads back as other types ("yes", "0x1F", "2026-01-01", "~", "") among them.
config_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.text()
    | st.sampled_from(("yes", "No", "0x1F", "0o17", "1e3", "2026-01-01", "~", "", "null", ".inf"))
)
# Names, paths, images and numbers, with every character libyaml treats specially at the
# start, inside or at the end of plain text, and lengths past the simple-key limit (128)
# and the narrower width (80).
config_text = st.text(alphabet="aZ09_./+=%@:-# '\"!&*?,[]{}~|>`\n", max_size=12) | st.sampled_from(
    (
        "-",
        "-a",
        "a-",
        "a:",
        ":a",
        "a:b",
        "...",
        "...a",
        "..a",
        "---",
        "%a",
        "a%",
        "@a",
        "a@b",
        "=",
        "+1",
        "+a",
        ".5",
        ".inf",
        "true",
        "on",
        "0x1F",
        "1_000",
        "2026-01-01",
        "~",
        "",
        "ghcr.io/siderolabs/kubelet:v1.34.9",
        "https://kubernetes.tenant.svc:6443",
        "15%",
        "MIIB" + "Qm9vdHN0cmFw+/=" * 20,
        "k" * 128,
        "k" * 129,
    )
)
config_documents = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | config_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(config_text, inner, max_size=4),
    max_leaves=30,
)
configs = st.recursive(
    config_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


def safe_dump(document: Any, *, sort_keys: bool, width: int) -> str:
    text: str = yaml.dump(
        document,
        Dumper=yaml.CSafeDumper,
        sort_keys=sort_keys,
        width=width,
        default_flow_style=False,
    )
    return text


@settings(max_examples=400, deadline=None)
@given(document=documents, sort_keys=st.booleans(), width=st.sampled_from((80, 1000)))
def test_to_yaml_writes_what_pyyaml_writes(document: Any, sort_keys: bool, width: int) -> None:
    assert to_yaml(document, sort_keys=sort_keys, width=width) == safe_dump(
        document, sort_keys=sort_keys, width=width
    )


@settings(max_examples=400, deadline=None)
@given(document=configs, sort_keys=st.booleans(), width=st.sampled_from((80, 1000)))
def test_configuration_events_write_what_pyyaml_writes(
    document: Any, sort_keys: bool, width: int
) -> None:
    events: list[Event] = []
    text._events(document, events, set(), sort_keys)  # Written from events, not by PyYAML.
    assert text.emitted(document, sort_keys=sort_keys, width=width) == safe_dump(
        document, sort_keys=sort_keys, width=width
    )


@settings(max_examples=600, deadline=None)
@given(document=config_documents, sort_keys=st.booleans(), width=st.sampled_from((80, 1000)))
def test_configuration_text_writes_what_pyyaml_writes(
    document: Any, sort_keys: bool, width: int
) -> None:
    assert to_yaml(document, sort_keys=sort_keys, width=width) == safe_dump(
        document, sort_keys=sort_keys, width=width
    )


def test_plain_configuration_is_written_without_the_emitter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*_: Any, **__: Any) -> str:
        raise AssertionError("written by libyaml's emitter")

    document = {
        "version": "v1alpha1",
        "machine": {
            "type": "worker",
            "install": {"image": "factory.talos.dev/installer/ce4c98:v1.10.5", "wipe": False},
            "kubelet": {"image": "ghcr.io/siderolabs/kubelet:v1.34.9", "extraArgs": {}},
            "nodeLabels": {"node.kubernetes.io/role": "worker", "ready": "true"},
            "ca": {"crt": "LS0tLS1CRUdJTi" + "Qm9vdHN0cmFw+/=" * 30},
        },
        "cluster": {
            "controlPlane": {"endpoint": "https://kubernetes-prod.tenant-dev.svc:6443"},
            "network": {"podSubnets": ["10.244.0.0/16"], "dnsDomain": "cluster.local"},
            "evictionHard": {"memory.available": "15%"},
            "replicas": 3,
            "extra": [[1, None], [{"a": "1.5", "b": []}]],
        },
    }
    monkeypatch.setattr(text, "emitted", refuse)
    for sort_keys in (True, False):
        for width in (80, 1000):
            assert to_yaml(document, sort_keys=sort_keys, width=width) == safe_dump(
                document, sort_keys=sort_keys, width=width
            )


def test_a_value_met_twice_is_an_alias_as_safe_dump_writes_it() -> None:
    shared = {"a": [1, 2]}
    document = {"x": shared, "y": shared, "z": [shared["a"]]}
    written = to_yaml(document)
    assert "&id001" in written
    assert written == safe_dump(document, sort_keys=True, width=80)


def test_an_empty_collection_met_twice_is_an_alias_too() -> None:
    empty: dict[str, Any] = {}
    none: list[Any] = []
    documents: list[dict[str, Any]] = [{"a": empty, "b": empty}, {"a": [none, none]}, {"a": {}}]
    for document in documents:
        assert to_yaml(document) == safe_dump(document, sort_keys=True, width=80)
