"""Opening a vendor library (drivers/common/dynamic_library): a library that will not load
is one error line naming every place tried, each with the loader's reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from cuagent import _core

DEFAULT_ROCM_NAMES = [
    "librocm_smi64.so", "librocm_smi64.so.7", "librocm_smi64.so.6", "librocm_smi64.so.5", "librocm_smi64.so.1",
    "/opt/rocm/lib/librocm_smi64.so", "/opt/rocm/lib/librocm_smi64.so.7", "/opt/rocm/lib/librocm_smi64.so.6",
]


def places_named(text: str) -> list[str]:
    """The candidates a "cannot load" line names, in its order: those not found, then those
    tried with the loader's reason."""
    places: list[str] = []
    for part in text.split(": ", 2)[-1].split("; "):
        if part.startswith("not found: "):
            places += part[len("not found: "):].split(", ")
        elif part.startswith("tried "):
            places.append(part[len("tried "):].split(" (")[0])
        elif " (" in part:
            places.append(part.split(" (")[0])
    return places


def rocm_error(library: str) -> str:
    with pytest.raises(RuntimeError) as info:
        _core.make_rocm_smi_driver(library=library)
    return str(info.value)


def test_a_missing_rocm_library_is_one_line_with_the_loaders_reason(tmp_path: Path) -> None:
    path = str(tmp_path / "librocm_smi64.so")
    text = rocm_error(path)
    assert "\n" not in text, text
    assert text.startswith("rocm_smi: cannot load the ROCm SMI library")
    assert f"not found: {path}" in text and places_named(text) == [path], text
    assert "install rocm-smi-lib or pass library=<path>" in text


def test_the_default_rocm_search_names_every_place_tried() -> None:
    try:
        _core.make_rocm_smi_driver(library="")
    except RuntimeError as e:
        text = str(e)
    else:
        pytest.skip("a ROCm SMI library is installed and initialised here")
    if "cannot load" not in text:
        pytest.skip(f"a ROCm SMI library is installed here (the search stopped at it): {text}")
    assert "\n" not in text, text
    places = places_named(text)
    for name in DEFAULT_ROCM_NAMES:
        assert name in places, (name, text)
    # In search order.
    positions = [places.index(name) for name in DEFAULT_ROCM_NAMES]
    assert positions == sorted(positions)
