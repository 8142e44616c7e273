"""The node summary's bytes (PROTOCOL.md §3.5) for a fixed engine state do not change unless
the protocol does: tests/wire_golden.py's windows of each backend (mock, and nvml /
rocm_smi on their fake libraries), summarised as the agent does, against
tests/golden/wire_summary_<backend>.msgpack. CUAGENT_WRITE_GOLDEN=1 regenerates them with a
deliberate change of the layout."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import msgpack

from fakes.amd_fixtures import rocm_library  # noqa: F401
from isolated import run_python
from test_wire_golden import GENERATOR, check
from wire_golden import NVML_SCRIPT

GOLDEN = Path(__file__).resolve().parent / "golden"


def generate(backend: str, out: Path, *args: object, env: dict[str, str] | None = None) -> bytes:
    # A fresh process per backend, as for the other golden blobs.
    code = f"import runpy; runpy.run_path({str(GENERATOR)!r}, run_name='__main__')"
    run_python(code, "summary", backend, out, *args, env=env, timeout=120, what=f"wire_golden summary {backend}")
    return out.read_bytes()


def test_mock_summary_bytes(tmp_path: Path) -> None:
    check("summary_mock", generate("mock", tmp_path / "mock.msgpack"))


def test_nvml_summary_bytes(fake_nvml) -> None:
    script = fake_nvml.script(NVML_SCRIPT)
    got = generate("nvml", fake_nvml.work / "nvml-summary.msgpack", fake_nvml.library, env=fake_nvml.env(script))
    check("summary_nvml", got)


def test_rocm_smi_summary_bytes(rocm_library: Path, tmp_path: Path) -> None:  # noqa: F811
    check("summary_rocm_smi", generate("rocm_smi", tmp_path / "rocm-summary.msgpack", rocm_library, tmp_path))


def test_the_golden_summaries_say_what_each_backend_measures() -> None:
    # Not vacuous: read from the page (struct, §3.5), each blob's records hold what its backend
    # measures, the lost device nothing but its age.
    def records(backend: str) -> tuple[list[tuple], list[tuple]]:
        blob = msgpack.unpackb((GOLDEN / f"wire_summary_{backend}.msgpack").read_bytes(), raw=False)
        out = []
        for m in blob["messages"][1:]:
            body = msgpack.unpackb(m[2], raw=False)
            raw, size = body["records"], body["size"]
            out.append([struct.unpack_from("<5f6H3B12B", raw, i) for i in range(0, len(raw), size)])
        return out[0], out[1]

    ok, lost = records("mock")
    # (Fields by index: 5 floats, age_ms 5, units 6, idle 7 .. thrashing 10, status 11, flags 12,
    # groups 13, group_idle 14..25.)
    assert len(ok) == 5 and all(r[11] == 0 and r[12] & 1 for r in ok)  # every mock device: per-SM states
    assert lost[0][11] == 1 and all(math.isnan(x) for x in lost[0][:5]) and lost[0][12] == 4
    nv_ok, _ = records("nvml")
    assert all(not r[12] & 1 and not math.isnan(r[0]) and not math.isnan(r[3]) for r in nv_ok)  # device level only
    amd_ok, _ = records("rocm_smi")
    # The MI300X's states are per XCD, expanded through its vendor layout: XCDs 1 and 2 are idle
    # (0 % busy in wire_golden.py), 38 CUs each.
    assert amd_ok[0][12] & 3 == 3 and amd_ok[0][13] == 8 and amd_ok[0][14:22] == (0, 38, 38, 0, 0, 0, 0, 0)
    assert amd_ok[0][7] == 76  # idle units counted: the two idle XCDs' CUs
