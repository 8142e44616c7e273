"""Mock faults from the command line and the config file: an operator rehearses a GPU falling
off the bus, read errors and stalled reads with `cuagent run --driver mock`."""

from __future__ import annotations

from pathlib import Path

import pytest

from cuagent import _core
from cuagent import config as config_mod
from cuagent.cli import make_engine
from cuagent.mock import MockDevice, parse_fault, with_faults
from feed_support import CheckedFeed, Proc

T0_NS = 1_700_000_000_000_000_000


def test_a_fault_given_on_the_command_line_shows_in_the_feed(tmp_path: Path):
    # Device 1 falls off the bus 2 s after its first read and is back at 3 s; device 0 is fine.
    feed, sync = f"ipc://{tmp_path}/f", f"ipc://{tmp_path}/s"
    proc = Proc(["run", "--driver", "mock", "--mock-devices", "h100-sxm:training,a100-sxm:training",
                 "--mock-faults", "1:lost@2s..3s", "--node", "rehearsal", "--feed", feed, "--sync", sync,
                 "--rate-hz", "200", "--publish-interval-ms", "50", "--log-level", "info"],
                feed, sync, tmp_path / "agent.log")
    try:
        proc.wait_ping()
        watched = CheckedFeed(proc)
        try:
            watched.wait(lambda f: {"device_lost", "device_back"} <= {m[4]["type"] for m in f.of("event")},
                         "device_lost and device_back of mock-1")
            lost = [m for m in watched.of("event") if m[4]["type"] == "device_lost"]
            assert [m[2] for m in lost] == ["mock-1"] and "fell off the bus" in lost[0][4]["detail"], lost
            assert all(m[2] == "mock-1" for m in watched.of("event")), watched.of("event")
        finally:
            watched.close()
    finally:
        assert proc.stop() == 0, proc.log()


def test_faults_in_the_config_file_reach_the_devices(tmp_path: Path):
    path = tmp_path / "agent.toml"
    path.write_text('driver = "mock"\nmock_devices = ["h100-sxm:idle", "a100-sxm:idle", "mi300x:idle"]\n'
                    'mock_faults = ["0:errors=1", "1:lost@500ms", "*:slow=1ms/10s"]\n')
    cfg = config_mod.build(config_mod.load_file(path), {})
    engine = make_engine(cfg)  # built, not started: its driver is read directly below
    drv = engine.driver
    status, _, detail = _core.driver_read(drv, 0, T0_NS)
    assert status == "error" and "read error" in detail
    assert _core.driver_read(drv, 1, T0_NS)[0] == "ok"
    status, _, detail = _core.driver_read(drv, 1, T0_NS + 500_000_000)
    assert status == "lost" and "fell off the bus" in detail
    assert _core.driver_read(drv, 2, T0_NS)[0] == "ok"  # device 2: only the (rare) stall
    # The flag replaces the file's list, as every flag overrides its key.
    cfg = config_mod.build(config_mod.load_file(path), {"mock_faults": ["2:lost@1s"]})
    devices, _ = cfg.driver_args("mock")
    assert [d.lost_at_s for d in devices] == [None, None, 1.0] and devices[0].read_error_rate == 0


@pytest.mark.parametrize("spec, fields", [
    ("1:lost@5s", {"lost_at_s": 5.0}),
    ("1:lost@5s..8s", {"lost_at_s": 5.0, "back_at_s": 8.0}),
    ("0:lost@250ms..1.5s", {"lost_at_s": 0.25, "back_at_s": 1.5}),
    ("0:errors=0.1", {"read_error_rate": 0.1}),
    ("*:slow=300ms/2s", {"slow_read_ms": 300.0, "slow_read_every_s": 2.0}),
])
def test_fault_syntax_sets_the_mock_device_fields(spec, fields):
    fault = parse_fault(spec)
    devices = with_faults([MockDevice("h100-sxm"), MockDevice("a100-sxm")], [fault])
    hit = {0, 1} if spec.startswith("*") else {int(spec[0])}
    names = ("lost_at_s", "back_at_s", "read_error_rate", "slow_read_every_s", "slow_read_ms")
    plain = {name: getattr(MockDevice(), name) for name in names}
    for i, device in enumerate(devices):
        assert {name: getattr(device, name) for name in names} == (dict(plain, **fields) if i in hit else plain)
