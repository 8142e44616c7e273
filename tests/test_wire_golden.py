"""The feed's bytes for a fixed engine state do not change unless the protocol does.

tests/wire_golden.py builds topo, state, hb and a snapshot reply from each backend's
devices (mock, and nvml / rocm_smi on their fake libraries) read at fixed times and
aggregated by the C++ aggregator; tests/golden/wire_<backend>.msgpack holds the bytes
they made when this test was written. Any refactoring of drivers, aggregator, topology
or encoder must leave them byte-identical.

The agent sends the state bodies that the engine's core encodes (C++, straight from the
window buffer), and the Python encoder stays the reference for bodies built from decoded
states: each test also holds the core's bodies for the same windows to the golden state
bodies, byte for byte, so the two encoders cannot drift apart (random windows:
tests/test_state_encoder.py).

A deliberate change of the wire (a PROTOCOL.md edit) regenerates them with
CUAGENT_WRITE_GOLDEN=1 and commits the new files together with the change.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import msgpack
import pytest

from fakes.amd_fixtures import rocm_library  # noqa: F401
from isolated import run_python
from wire_golden import NVML_SCRIPT

from cuagent import _core  # noqa: E402,F401 — a missing extension fails the suite, never skips it

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden"
GENERATOR = HERE / "wire_golden.py"


def generate(backend: str, out: Path, *args: object, env: dict[str, str] | None = None) -> bytes:
    # A fresh process per backend: the fake libraries keep their state per process.
    code = f"import runpy; runpy.run_path({str(GENERATOR)!r}, run_name='__main__')"
    run_python(code, backend, out, *args, env=env, timeout=120, what=f"wire_golden {backend}")
    return out.read_bytes()


def first_difference(want: Any, got: Any, path: str = "") -> str:
    """Where two decoded blobs first differ (frames are decoded as msgpack where they can be)."""
    if isinstance(want, bytes) and isinstance(got, bytes):
        if want == got:
            return ""
        try:
            return first_difference(msgpack.unpackb(want, raw=False), msgpack.unpackb(got, raw=False), path)
        except Exception:  # noqa: BLE001 — not msgpack (a topic, an array): compare as bytes
            at = next((i for i, (a, b) in enumerate(zip(want, got)) if a != b), min(len(want), len(got)))
            return f"{path}: bytes differ at offset {at} (lengths {len(want)} and {len(got)})"
    if isinstance(want, dict) and isinstance(got, dict):
        if list(want) != list(got):
            return f"{path}: keys {list(want)} != {list(got)}"
        for key in want:
            found = first_difference(want[key], got[key], f"{path}.{key}")
            if found:
                return found
        return ""
    if isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            return f"{path}: {len(want)} items != {len(got)}"
        for i, (a, b) in enumerate(zip(want, got)):
            found = first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        return ""
    if want != got or type(want) is not type(got):
        return f"{path}: {want!r} != {got!r}"
    return ""


def golden_state_bodies(backend: str) -> list[bytes]:
    blob = msgpack.unpackb((GOLDEN / f"wire_{backend}.msgpack").read_bytes(), raw=False)
    return [m[2] for m in blob["messages"] if m[0].startswith(b"cua1/state/")]


def check_core(backend: str, out: Path) -> None:
    """The core's state bodies (written beside the blob) are the golden ones, byte for byte."""
    core = msgpack.unpackb(out.with_name(out.name + ".core").read_bytes(), raw=False)
    want = golden_state_bodies(backend)
    assert len(core) == len(want) >= 2, backend
    for i, (w, g) in enumerate(zip(want, core)):
        if g != w:
            pytest.fail(f"{backend} device {i}: the core's state body differs from the Python encoder's "
                        f"({len(w)} -> {len(g)} bytes): {first_difference(w, g)}")


def check(backend: str, got: bytes, out: Optional[Path] = None) -> None:
    """``got`` is the golden blob; with ``out`` (where it was written), the core's state bodies
    written beside it are the golden ones too."""
    golden = GOLDEN / f"wire_{backend}.msgpack"
    if os.environ.get("CUAGENT_WRITE_GOLDEN") == "1":
        golden.parent.mkdir(exist_ok=True)
        golden.write_bytes(got)
        if out is not None:
            check_core(backend, out)  # a new golden is the Python encoder's: the core must follow
        pytest.skip(f"wrote {golden}")
    want = golden.read_bytes()
    if got != want:
        where = first_difference(msgpack.unpackb(want, raw=False), msgpack.unpackb(got, raw=False))
        pytest.fail(f"{backend}: wire bytes changed ({len(want)} -> {len(got)} bytes); first difference at {where}")
    if out is not None:
        check_core(backend, out)


def test_mock_wire_bytes(tmp_path: Path) -> None:
    # Levels (SM and coarser), MIG partitions, an MI300X's XCDs and a generic device.
    out = tmp_path / "mock.msgpack"
    check("mock", generate("mock", out), out)


def test_nvml_wire_bytes(fake_nvml) -> None:
    # Device and partition values only (no per-SM counters), whole-number units as ints.
    script = fake_nvml.script(NVML_SCRIPT)
    out = fake_nvml.work / "nvml.msgpack"
    check("nvml", generate("nvml", out, fake_nvml.library, env=fake_nvml.env(script)), out)


def test_rocm_smi_wire_bytes(rocm_library: Path, tmp_path: Path) -> None:  # noqa: F811
    # The XCD level (per-XCD activity) and CPX partitions.
    out = tmp_path / "rocm.msgpack"
    check("rocm_smi", generate("rocm_smi", out, rocm_library, tmp_path), out)


def test_the_golden_blobs_cover_every_message_kind() -> None:
    # Not vacuous: each blob holds a topo, a state per device with values, an hb and a snapshot.
    for backend in ("mock", "nvml", "rocm_smi"):
        blob = msgpack.unpackb((GOLDEN / f"wire_{backend}.msgpack").read_bytes(), raw=False)
        topics = [m[0].decode() for m in blob["messages"]]
        assert topics[0].startswith("cua1/topo/") and topics[-1].startswith("cua1/hb/")
        topo = msgpack.unpackb(blob["messages"][0][2], raw=False)
        states = [msgpack.unpackb(m[2], raw=False) for m in blob["messages"] if m[0].startswith(b"cua1/state/")]
        assert len(states) == len(topo["devices"]) >= 2, backend
        for s in states:
            assert s["device"], (backend, "a state without device values")
        assert msgpack.unpackb(blob["snapshot"], raw=False)["ok"] is True

