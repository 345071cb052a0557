"""Resource presets and request maths (reference §3), table-driven."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from functions.domain import presets
from functions.domain.presets import AllocationRatios
from functions.domain.quantity import check_magnitude, helm_float, helm_to_float, parse

DEFAULT = AllocationRatios()


def test_all_forty_series_names_and_seven_legacy_names() -> None:
    series = [n for n in presets.PRESET_NAMES if "." in n]
    legacy = [n for n in presets.PRESET_NAMES if "." not in n]
    assert len(series) == 40
    assert legacy == ["nano", "micro", "small", "medium", "large", "xlarge", "2xlarge"]
    assert len(set(presets.PRESET_NAMES)) == 47


@pytest.mark.parametrize(
    ("preset", "cpu", "memory"),
    [
        ("t1.nano", "250m", "128Mi"),
        ("t1.4xlarge", "32", "16Gi"),
        ("c1.medium", "2", "2Gi"),
        ("s1.small", "1", "2Gi"),
        ("u1.large", "4", "16Gi"),
        ("m1.2xlarge", "16", "128Gi"),
        ("m1.4xlarge", "32", "256Gi"),
        # Legacy names equal a series preset; "medium" is c1.small, not c1.medium.
        ("nano", "250m", "128Mi"),
        ("medium", "1", "1Gi"),
        ("large", "2", "2Gi"),
        ("2xlarge", "8", "8Gi"),
    ],
)
def test_preset_limits(preset: str, cpu: str, memory: str) -> None:
    assert presets.preset_limits(preset, {}) == {
        "cpu": cpu,
        "memory": memory,
        "ephemeral-storage": "2Gi",
    }


def test_memory_doubles_along_the_series_for_every_size() -> None:
    for size in presets.SIZES:
        memories = [
            parse(presets.PRESETS[f"{s}.{size}"][1]) for s in ("t1", "c1", "s1", "u1", "m1")
        ]
        assert all(b == 2 * a for a, b in itertools.pairwise(memories))


def test_worked_example_of_the_reference() -> None:
    assert presets.resources("t1.micro", {}, DEFAULT) == {
        "limits": {"cpu": "500m", "ephemeral-storage": "2Gi", "memory": "256Mi"},
        "requests": {"cpu": "0.05", "ephemeral-storage": "53687091", "memory": "268435456"},
    }


def test_overrides_are_per_key() -> None:
    out = presets.resources("t1.micro", {"cpu": "2"}, DEFAULT)
    assert out["limits"] == {"cpu": "2", "ephemeral-storage": "2Gi", "memory": "256Mi"}
    assert out["requests"]["cpu"] == "0.2"
    assert out["requests"]["memory"] == "268435456"


@pytest.mark.parametrize(
    ("ratios", "cpu", "memory", "ephemeral"),
    [
        (
            AllocationRatios(cpu=4, memory=2, ephemeral_storage=10),
            "0.125",
            "134217728",
            "214748364",
        ),
        (
            AllocationRatios(cpu=3, memory=1, ephemeral_storage=40),
            "0.16666666666666666",
            "268435456",
            "53687091",
        ),
        (AllocationRatios(cpu=1, memory=1, ephemeral_storage=1), "0.5", "268435456", "2147483648"),
    ],
)
def test_ratios_divide_requests(
    ratios: AllocationRatios, cpu: str, memory: str, ephemeral: str
) -> None:
    requests = presets.resources("t1.micro", {}, ratios)["requests"]
    assert requests == {"cpu": cpu, "memory": memory, "ephemeral-storage": ephemeral}


def test_other_keys_request_their_limit() -> None:
    out = presets.sanitize({"nvidia.com/gpu": "1"}, DEFAULT)
    assert out == {"limits": {"nvidia.com/gpu": "1"}, "requests": {"nvidia.com/gpu": "1"}}


def test_quota_flattening_follows_the_reference() -> None:
    quota = presets.flatten_quota(
        {
            "cpu": "4",
            "memory": "1Gi",
            "ephemeral-storage": "40Gi",
            "storage": "100Gi",
            "pods": "10",
            "services.loadbalancers": "2",
            "nvidia.com/gpu": "1",
        },
        DEFAULT,
    )
    assert quota == {
        "limits.cpu": "4",
        "limits.ephemeral-storage": "40Gi",
        "limits.memory": "1Gi",
        "limits.nvidia.com/gpu": "1",
        "pods": "10",
        "requests.cpu": "0.4",
        "requests.ephemeral-storage": "1073741824",
        "requests.memory": "1073741824",
        "requests.nvidia.com/gpu": "1",
        "requests.storage": "100Gi",
        "services.loadbalancers": "2",
    }


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.2, "0.2"),
        (0.05, "0.05"),
        (0.025, "0.025"),
        (1e-5, "1e-05"),
        (1.5e-7, "1.5e-07"),
        (0.0001, "0.0001"),
        (3.2, "3.2"),
        (16.0, "16"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
    ],
)
def test_helm_float_formatting_matches_go(value: float, text: str) -> None:
    assert helm_float(value) == text


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("10Gi", 10 * 2**30),
        ("500m", "0.5"),
        ("1.5Gi", 1610612736),
        ("2", 2),
        ("1e3", 1000),
        ("128974848", 128974848),
    ],
)
def test_quantities_parse_exactly(text: str, value: object) -> None:
    assert parse(text) == Decimal(str(value))


@pytest.mark.parametrize(
    ("text", "value"),
    [("1n", 1e-9), ("5u", 5e-6), ("1e3", 1000), ("0.5Ki", 512), ("1E", 1e18), ("2e-3", 0.002)],
)
def test_helm_to_float_reads_every_suffix_of_the_grammar(text: str, value: float) -> None:
    # Regression (fuzzing): n and u were unknown, so "5u" failed as an internal error.
    assert helm_to_float(text) == pytest.approx(value)


def test_requests_of_tiny_limits() -> None:
    assert presets.sanitize({"cpu": "5u"}, DEFAULT)["requests"]["cpu"] == "5e-07"


@pytest.mark.parametrize("text", ["1e309", "9e999", "99999999999999999999", "16Ei", "-9Ei"])
def test_quantities_beyond_2_to_the_63_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="larger than 2\\^63"):
        check_magnitude(text)


@pytest.mark.parametrize("text", ["", "ten", "10 Gi", "1.2.3", "Gi", "1e9999999"])
def test_bad_quantities_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="quantity"):
        parse(text)
