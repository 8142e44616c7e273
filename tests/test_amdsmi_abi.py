"""The amdsmi driver's view of libamd_smi's C ABI against AMD's own description of it.

AMD's `amdsmi` Python package (PyPI, 7.0.2: AMD SMI 26, ROCm 7.0) carries a ctypes
description of the C ABI generated from amdsmi.h (amdsmi_wrapper.py). These tests compare
with it, field by field: every struct the driver passes (size, and offset and size of every
field it reads), the gpu_metrics offsets it decodes, every enum value it passes or tests
for, and the signature of every function it calls through. The fake libamd_smi the other
tests use is checked the same way, by calling it through AMD's ctypes types, so that a layout
mistake cannot hide in a fake that shares it.

The wrapper loads libamd_smi.so and binds every function when imported: it is given a stub
library exporting those names (nothing here calls them) and read for its types only.
"""

from __future__ import annotations

import ctypes
import importlib.util
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from cuagent import _core
from fakes.amdsmi import FakeAmdSmiHost
from fakes.amd_fixtures import amdsmi_host, amdsmi_library  # noqa: F401

BOUND = re.compile(r"_libraries\['libamd_smi\.so'\]\.(\w+)")


def _wrapper_path() -> Path:
    spec = importlib.util.find_spec("amdsmi")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("AMD's amdsmi package is not installed: it is the ABI truth of these tests "
                    "(pip install '.[test]' installs amdsmi==7.0.2)")
    return Path(list(spec.submodule_search_locations)[0]) / "amdsmi_wrapper.py"


@pytest.fixture(scope="module")
def amd(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """amdsmi_wrapper.py, imported against a stub libamd_smi that exports what it binds."""
    path = _wrapper_path()
    names = sorted(set(BOUND.findall(path.read_text())))
    assert len(names) > 100, "the wrapper binds no functions: not the file these tests know"
    root = tmp_path_factory.mktemp("amdsmi-stub")
    (root / "lib").mkdir()
    source = root / "stub.c"
    source.write_text("".join(f"int {name}(void) {{ return 2; }}\n" for name in names))
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    assert cc is not None, "a C compiler is needed to build the stub"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(root / "lib" / "libamd_smi.so"), str(source)], check=True)
    mp = pytest.MonkeyPatch()
    mp.setenv("ROCM_HOME", str(root))  # the wrapper looks in $ROCM_HOME/lib first
    try:
        spec = importlib.util.spec_from_file_location("_amdsmi_wrapper_truth", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        mp.undo()
    return module


def _field(struct: Any, dotted: str) -> tuple[int, int]:
    """(offset, size) of a possibly nested field of a ctypes struct."""
    offset = 0
    for part in dotted.split("."):
        descriptor = getattr(struct, part)
        offset += descriptor.offset
        struct = dict((f[0], f[1]) for f in struct._fields_)[part]
    return offset, descriptor.size


def _kind(t: Any) -> str:
    """A ctypes type in the vocabulary of _core.amdsmi_abi_functions()."""
    if t is None:
        return "void"
    if t is ctypes.c_void_p:
        return "handle"
    if isinstance(t, type) and issubclass(t, (ctypes.Structure, ctypes.Union)):
        return re.sub(r"^(struct|union)_", "", t.__name__)
    if hasattr(t, "_type_") and isinstance(t, type) and issubclass(t, ctypes._Pointer):
        return "ptr:" + _kind(t._type_)
    code = getattr(t, "_type_", None)
    if code == "c":
        return "char"
    if isinstance(code, str) and code in "BHILQ":
        return f"u{8 * ctypes.sizeof(t)}"
    if isinstance(code, str) and code in "bhilq":
        return f"i{8 * ctypes.sizeof(t)}"
    return repr(t)


# ---- the driver against AMD's description ---------------------------------------------

def test_every_struct_and_field_the_driver_uses_has_amds_size_and_offset(amd):
    fields = _core.amdsmi_abi_fields()
    assert {t for t, *_ in fields} >= {"amdsmi_asic_info_t", "amdsmi_proc_info_t", "amdsmi_gpu_metrics_t",
                                       "amdsmi_power_info_t", "amdsmi_engine_usage_t", "amdsmi_kfd_info_t"}
    wrong = []
    for type_name, field, offset, size in fields:
        struct = getattr(amd, type_name)
        truth = (0, ctypes.sizeof(struct)) if field == "" else _field(struct, field)
        if truth != (offset, size):
            wrong.append(f"{type_name}.{field or '<size>'}: ours (offset {offset}, {size} B), "
                         f"AMD's (offset {truth[0]}, {truth[1]} B)")
    assert not wrong, "\n".join(wrong)


def test_every_enum_value_the_driver_uses_is_amds(amd):
    # Enums are in the wrapper; the two buffer sizes are module constants of amdsmi_interface.py
    # (read as text: importing it would import the wrapper again).
    interface = (_wrapper_path().parent / "amdsmi_interface.py").read_text()

    def theirs(name: str) -> Any:
        if hasattr(amd, name):
            return getattr(amd, name)
        found = re.search(rf"^{name}\s*=\s*(\d+)\s*$", interface, re.MULTILINE)
        return int(found.group(1)) if found else None

    wrong = [f"{name}: ours {value}, AMD's {theirs(name)}"
             for name, value in _core.amdsmi_abi_constants() if theirs(name) != value]
    assert not wrong, "\n".join(wrong)


def test_every_function_the_driver_calls_has_amds_signature(amd):
    wrong = []
    for name, ours in _core.amdsmi_abi_functions():
        fn = getattr(amd, name)
        theirs = [_kind(fn.restype), *(_kind(t) for t in fn.argtypes)]
        if theirs != list(ours):
            wrong.append(f"{name}: ours {ours}, AMD's {theirs}")
    assert not wrong, "\n".join(wrong)


def test_the_gpu_metrics_table_the_driver_decodes_is_amds_4544_byte_layout(amd):
    assert ctypes.sizeof(amd.amdsmi_gpu_metrics_t) == 4544
    xcp = amd.amdsmi_gpu_xcp_metrics_t
    assert (ctypes.sizeof(xcp), xcp.gfx_busy_acc.offset) == (504, 120)


# ---- the fake against AMD's description -----------------------------------------------

def _through_amd_types(amd: ModuleType, library: Path) -> Any:
    """The fake library with AMD's ctypes signatures on its functions."""
    lib = ctypes.CDLL(str(library))
    for name, _ in _core.amdsmi_abi_functions():
        fn, truth = getattr(lib, name), getattr(amd, name)
        fn.argtypes, fn.restype = truth.argtypes, truth.restype
    return lib


def test_the_fake_answers_in_amds_layouts(amd, amdsmi_host: FakeAmdSmiHost):
    gpu = amdsmi_host.add_mi300x(compute="CPX", memory="NPS4")
    amdsmi_host.set_xcd_busy(gpu, [10, 20, 30, 40, 50, 60, 70, 80])
    amdsmi_host.tick(gpu, 3)
    fake = amdsmi_host.fake
    fake.set_gpu_value(gpu.index, "power_w", 612)
    fake.set_gpu_value(gpu.index, "ecc_uncorrected", 7)
    fake.add_process(gpu.processors[5], 31337, "trainer", 3 << 30, gfx_ns=123456789)
    lib = _through_amd_types(amd, amdsmi_host.library)
    ok = amd.AMDSMI_STATUS_SUCCESS
    assert lib.amdsmi_init(amd.AMDSMI_INIT_AMD_GPUS) == ok
    try:
        version = amd.amdsmi_version_t()
        assert lib.amdsmi_get_lib_version(ctypes.byref(version)) == ok and version.major == 26
        count = ctypes.c_uint32(0)
        assert lib.amdsmi_get_socket_handles(ctypes.byref(count), None) == ok and count.value == 1
        sockets = (amd.amdsmi_socket_handle * 1)()
        assert lib.amdsmi_get_socket_handles(ctypes.byref(count), sockets) == ok
        n = ctypes.c_uint32(8)
        procs = (amd.amdsmi_processor_handle * 8)()
        assert lib.amdsmi_get_processor_handles(sockets[0], ctypes.byref(n), procs) == ok and n.value == 8

        asic = amd.amdsmi_asic_info_t()
        assert lib.amdsmi_get_gpu_asic_info(procs[0], ctypes.byref(asic)) == ok
        assert (asic.market_name, asic.device_id, asic.vendor_id) == (b"AMD Instinct MI300X", 0x74A1, 0x1002)
        bdf = amd.amdsmi_bdf_t()
        assert lib.amdsmi_get_gpu_device_bdf(procs[0], ctypes.byref(bdf)) == ok
        assert (bdf.bdf.domain_number, bdf.bdf.bus_number, bdf.bdf.device_number) == (0, 0x11, 0)
        kfd = amd.amdsmi_kfd_info_t()
        assert lib.amdsmi_get_gpu_kfd_info(procs[3], ctypes.byref(kfd)) == ok and kfd.current_partition_id == 3
        usage = amd.amdsmi_engine_usage_t()
        assert lib.amdsmi_get_gpu_activity(procs[1], ctypes.byref(usage)) == ok and usage.gfx_activity == 20
        power = amd.amdsmi_power_info_t()
        assert lib.amdsmi_get_power_info(procs[0], ctypes.byref(power)) == ok and power.current_socket_power == 612
        clock = amd.amdsmi_clk_info_t()
        assert lib.amdsmi_get_clock_info(procs[0], amd.AMDSMI_CLK_TYPE_MEM, ctypes.byref(clock)) == ok
        assert clock.clk == 900
        ecc = amd.amdsmi_error_count_t()
        assert lib.amdsmi_get_gpu_total_ecc_count(procs[0], ctypes.byref(ecc)) == ok
        assert (ecc.correctable_count, ecc.uncorrectable_count) == (0, 7)
        text = ctypes.create_string_buffer(256)
        assert lib.amdsmi_get_gpu_compute_partition(procs[0], text, 256) == ok and text.value == b"CPX"

        room = ctypes.c_uint32(4)
        listed = (amd.amdsmi_proc_info_t * 4)()
        assert lib.amdsmi_get_gpu_process_list(procs[5], ctypes.byref(room), listed) == ok and room.value == 1
        p = listed[0]
        assert (p.pid, p.name, p.memory_usage.vram_mem) == (31337, b"trainer", 3 << 30)
        assert p.engine_usage.gfx >= 123456789

        table = amd.amdsmi_gpu_metrics_t()
        assert lib.amdsmi_get_gpu_metrics_info(procs[0], ctypes.byref(table)) == ok
        assert (table.common_header.format_revision, table.common_header.content_revision) == (1, 8)
        assert (table.num_partition, table.current_socket_power, table.accumulation_counter) == (8, 612, 3)
        busy = [table.xcp_stats[x].gfx_busy_inst[0] for x in range(8)]
        acc = [table.xcp_stats[x].gfx_busy_acc[0] for x in range(8)]
        assert busy == [10, 20, 30, 40, 50, 60, 70, 80] and acc == [3 * b for b in busy]
        assert table.xcp_stats[0].gfx_busy_inst[1] == 0xFFFFFFFF  # one XCC per CPX partition: all-ones
        assert np.all(np.array(table.current_gfxclks) == 132)
    finally:
        lib.amdsmi_shut_down()
