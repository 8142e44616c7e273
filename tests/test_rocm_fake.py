"""The fake librocm_smi64 itself, read through ctypes: the driver's tests are only as
good as the fake's layouts, so these check them independently of the driver."""

from __future__ import annotations

import ctypes
import struct

import pytest

from fakes.amd_host import LAYOUT_V15, LAYOUT_V16, LAYOUT_V17, LAYOUT_V18
from fakes.rocm import FakeAmdHost
from fakes.amd_fixtures import rocm_host, rocm_library  # noqa: F401


def table(host: FakeAmdHost, device: int) -> bytes:
    fn = host.fake.lib.rsmi_dev_gpu_metrics_info_get
    fn.argtypes = [ctypes.c_uint32, ctypes.c_void_p]
    init = host.fake.lib.rsmi_init
    init.argtypes = [ctypes.c_uint64]
    assert init(0) == 0
    try:
        buffer = ctypes.create_string_buffer(b"\xA5" * 16384, 16384)
        assert fn(device, buffer) == 0
        return buffer.raw
    finally:
        host.fake.lib.rsmi_shut_down()


@pytest.mark.parametrize("layout, revision", [(LAYOUT_V15, 4), (LAYOUT_V16, 6), (LAYOUT_V17, 7), (LAYOUT_V18, 8)])
def test_the_fake_writes_exactly_its_release_layout(rocm_library, tmp_path, layout, revision):
    host = FakeAmdHost(rocm_library, tmp_path / "kfd", layout=layout)
    gpu = host.add_mi300x(metrics_revision=revision)
    raw = table(host, gpu.metrics_device)
    assert raw[layout:] == b"\xA5" * (16384 - layout)
    assert raw[layout - 16:layout] != b"\xA5" * 16
    _, fmt, content = struct.unpack_from("<HBB", raw, 0)
    assert (fmt, content) == (1, revision)


def test_fields_a_table_lacks_are_all_ones(rocm_host):
    gpu = rocm_host.add_mi300x(metrics_revision=4)
    raw = table(rocm_host, gpu.metrics_device)
    assert raw[424:4544] == b"\xFF" * (4544 - 424)  # no accumulators, no xcp_stats in 1.4
    assert struct.unpack_from("<H", raw, 4)[0] == 0xFFFF  # no edge temperature on MI300
    assert struct.unpack_from("<H", raw, 120)[0] == 140  # current_socket_power


def test_xcp_stats_sit_where_the_1_8_layout_puts_them(rocm_host):
    gpu = rocm_host.add_mi300x(compute="CPX")
    for xcd in range(8):
        rocm_host.fake.set_xcd_busy(gpu.metrics_device, xcd, 10 + xcd)
    rocm_host.tick(gpu, 3)
    raw = table(rocm_host, gpu.metrics_device)
    assert struct.unpack_from("<H", raw, 472)[0] == 8  # num_partition
    for p in range(8):
        entry = 480 + 504 * p
        assert struct.unpack_from("<I", raw, entry)[0] == 10 + p  # gfx_busy_inst[0]
        assert struct.unpack_from("<I", raw, entry + 4)[0] == 0xFFFFFFFF  # one XCC per partition
        assert struct.unpack_from("<Q", raw, entry + 120)[0] == 3 * (10 + p)  # gfx_busy_acc[0]
    assert struct.unpack_from("<Q", raw, 424)[0] == 3  # accumulation_counter


def test_firmware_timestamp_moves_only_with_the_firmware(rocm_host):
    gpu = rocm_host.add_mi300x()
    stamp = lambda: struct.unpack_from("<Q", table(rocm_host, gpu.metrics_device), 96)[0]  # noqa: E731
    first = stamp()
    assert stamp() == first
    rocm_host.tick(gpu)
    assert stamp() > first
