"""Volumes: the class is fixed at creation and the size only grows (LINSTOR and CSI semantics)."""

from __future__ import annotations

from functions.domain.errors import ComposeError
from functions.domain.quantity import parse


def guard_volume(
    *,
    size: str,
    storage_class: str,
    observed_size: str | None,
    observed_class: str | None,
    prefix: str = "spec.",
) -> None:
    """Refuse a change that would replace or shrink an existing volume.

    `observed_*` are None when nothing exists yet; an empty class means the default one.
    """
    if observed_class is not None and observed_class != storage_class:
        raise ComposeError(
            f"{prefix}storageClass",
            f"is immutable: the volumes use {observed_class or 'the default class'!r}",
        )
    if observed_size and parse(size) < parse(observed_size):
        raise ComposeError(f"{prefix}size", f"volumes cannot shrink from {observed_size} to {size}")
