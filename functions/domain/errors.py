"""The error every layer raises for input it cannot compose."""

from __future__ import annotations


class ComposeError(Exception):
    """Input that cannot be composed; becomes a Fatal result naming the field."""

    def __init__(self, path: str, message: str) -> None:
        # An empty path means the message already names its fields.
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


class StateError(ComposeError):
    """An observed or required object of an impossible type: the cluster's fault, not the
    claim's. Also a Fatal naming the object and the field."""
