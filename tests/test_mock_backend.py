"""cuagent.backends.mock.make_driver and the public MockDevice."""

from __future__ import annotations

import dataclasses

import pytest

from cuagent.backends.mock import make_driver
from cuagent.mock import MockDevice, presets, scenarios


def test_defaults_one_training_h100() -> None:
    drv = make_driver(None, 0)
    assert drv.device_count == 1 and drv.device(0).units == 132


def test_device_forms() -> None:
    drv = make_driver(
        [MockDevice("mi300x", scenario="idle"), "a100-sxm:fragmented", {"preset": "generic", "units": 8}], 4
    )
    assert [drv.device(i).units for i in range(3)] == [304, 108, 8]


def test_count_and_defaults_from_options() -> None:
    drv = make_driver(None, 1, count=3, preset="generic", units=20, scenario="idle")
    assert [drv.device(i).units for i in range(3)] == [20, 20, 20]


def test_mock_device_is_a_frozen_value() -> None:
    d = MockDevice("h100-sxm", scenario="mig", lost_at_s=2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.preset = "mi300x"  # type: ignore[misc]
    assert d.to_spec()["lost_at_s"] == 2.0 and d.to_spec()["back_at_s"] == -1.0


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: make_driver(None, 0, colour="red"), TypeError, "colour"),
        (lambda: make_driver(None, -1), ValueError, "seed"),
        (lambda: make_driver(None, 0, count=0), ValueError, "count"),
        (lambda: make_driver("h100-sxm", 0), TypeError, "list"),
        (lambda: make_driver([42], 0), TypeError, "42"),
        (lambda: make_driver([{"preset": "h100-sxm", "flavour": 1}], 0), ValueError, "flavour"),
        (lambda: make_driver([MockDevice("b200")], 0), ValueError, "b200"),
        (lambda: make_driver([MockDevice(lost_at_s="soon")], 0), ValueError, "soon"),  # type: ignore[arg-type]
    ],
)
def test_errors_name_the_bad_value(call, error, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=message):
        call()


def test_name_lists() -> None:
    assert "h100-sxm" in presets() and "fragmented" in scenarios()
