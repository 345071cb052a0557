"""Attach the control plane's log tails to the report of a failed e2e step."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from tests.e2e.controlplane import ControlPlane


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    del call
    report = yield
    plane = getattr(item, "funcargs", {}).get("plane")
    if report.failed and isinstance(plane, ControlPlane):
        report.sections.append(("control plane logs (tails)", plane.logs_tail()))
    return report
