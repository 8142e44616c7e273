"""The state decoder's two paths agree: whatever body the lean path (the one that decodes the
feed's bulk) accepts, the checked path (the one that names a bad field) accepts too, with the
same result. So there is one state decoder in behaviour, whichever path a body takes."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cuagent.wire import ProtocolError, state
from cuagent.wire.topo import Device
from cuagent.topology import CounterInfo, PartitionInfo


def _device() -> Device:
    return Device(
        id="GPU-0", index=0, vendor="mock", model="m", backend="mock", unit="sm", units=4,
        levels=["gpc", "sm"], counts={"gpc": 2, "sm": 4}, layout={"gpc": np.array([0, 0, 1, 1], np.uint16)},
        layout_source="mock", partitions=[PartitionInfo("0", "whole", 4, 1 << 30, "")], memory_bytes=1 << 30,
        counters={"active": CounterInfo("sm", "ratio", ""), "power": CounterInfo("device", "W", ""),
                  "sm_active": CounterInfo("partition", "ratio", "")},
    )


def _valid_body() -> dict[str, Any]:
    f32 = lambda n: np.arange(n, dtype="<f4").tobytes()  # noqa: E731
    return {
        "window_ns": 50_000_000, "samples": 10,
        "levels": {"sm": {"active": {"mean": f32(4), "max": f32(4)}, "state": bytes(4)}, "gpc": {"state": bytes(2)}},
        "partition": {"0": {"sm_active": 0.5}},
        "device": {"power": 300, "sm_active": 0.5},
        "idle_units": 2.0,
        "processes": [{"pid": 1, "name": "x"}],
        "pods": [{"namespace": "n", "pod": "p", "container": "c", "resource": "nvidia.com/gpu"}],
    }


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False),
                     st.text(max_size=4), st.binary(max_size=20))
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=3)),
                       max_leaves=6)
# Where in a valid body a mutation lands: a path of keys, then a new value or a deletion.
_PATHS = [(), ("levels",), ("levels", "sm"), ("levels", "sm", "active"), ("levels", "gpc"), ("partition",),
          ("partition", "0"), ("device",), ("processes",), ("pods",)]
_KEYS = ["window_ns", "samples", "levels", "partition", "device", "idle_units", "processes", "pods", "sm", "gpc",
         "active", "state", "mean", "max", "0", "power", "sm_active", "extra", 0, 1]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, state.Stat):
        return isinstance(b, state.Stat) and _same(a.mean, b.mean) and _same(a.max, b.max)
    if isinstance(a, state.State):
        return isinstance(b, state.State) and all(_same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _mutate(body: dict[str, Any], path: tuple[Any, ...], key: Any, value: Any, delete: bool) -> None:
    target: Any = body
    for k in path:
        if isinstance(target, dict) and k in target:
            target = target[k]
        elif isinstance(target, list) and target:
            target = target[0]
        else:
            return
    if isinstance(target, list) and target:
        target = target[0]
    if isinstance(target, dict):
        if delete:
            target.pop(key, None)
        else:
            target[key] = value


@settings(max_examples=400, deadline=None)
@given(mutations=st.lists(st.tuples(st.sampled_from(_PATHS), st.sampled_from(_KEYS), _values, st.booleans()), max_size=3),
       with_device=st.booleans())
def test_what_the_lean_path_accepts_the_checked_path_accepts_alike(mutations: list[Any], with_device: bool) -> None:
    body = _valid_body()
    for path, key, value, delete in mutations:
        _mutate(body, path, key, value, delete)
    device = _device() if with_device else None
    try:
        lean = state.decode_state_lean(body, device)
    except Exception:  # noqa: BLE001 — the lean path hands anything unusual to the checked one
        return
    try:
        checked = state.decode_state_checked(body, device)
    except ProtocolError as e:
        raise AssertionError(f"the lean path accepted a body the checked path refuses ({e}): {body!r}") from None
    assert _same(lean, checked), body


def test_a_valid_body_takes_the_lean_path() -> None:
    # Else the property above would hold for want of anything to compare.
    for device in (None, _device()):
        assert _same(state.decode_state_lean(_valid_body(), device), state.decode_state_checked(_valid_body(), device))
