"""A seeded soak of the feed under failure: real mock agents, two tiers of relays and one
client, while agents and relays are killed (SIGKILL) and restarted, agents and the first relay
tier are frozen (SIGSTOP) past the stale interval, the client stops polling for seconds, and
agents are taken down, at times long enough for the relays to forget them. Then the chaos
stops and the client must converge on the truth: every running agent's node present, not
stale, in the agent's current epoch, every device with a state from its current window; no
other node. Meanwhile it checks that no device's seq moved back within one epoch in the
client's view.

Not a test (it runs for minutes, and its figures are times); a tool to find the join and
resync bugs that only a long run with real processes shows. Exit status 1 when the client did
not converge or an invariant broke, with the processes' logs kept.

    python scripts/feed_chaos.py [--seconds 120] [--seed 1] [--agents 6] [--every-s 1.5] [--follow r2|both] [--keep DIR]

Topology: agents a0..a3 -> relay r1 -> relay r2 <- agents a4, a5; the client follows r2 (or,
with --follow both, r1 and r2: two paths to a0..a3).
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import msgpack

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from feed_support import Proc, request, start_agent, start_relay  # noqa: E402

from cuagent.client import Client  # noqa: E402

SETTLE_S = 30.0
FORGET_S = 8.0  # the relays forget a node silent this long (node_gone)


class Fleet:
    def __init__(self, tmp: Path, agents: int, rng: random.Random) -> None:
        self.tmp, self.rng = tmp, rng
        self.names = [f"a{i}" for i in range(agents)]
        self.tier1 = self.names[: max(1, agents * 2 // 3)]
        self.agents: dict[str, Proc] = {n: self._agent(n) for n in self.names}
        self.frozen: dict[str, float] = {}  # agent -> monotonic time to thaw
        self.down: dict[str, float] = {}  # agent killed for a while -> monotonic time to start again
        self.frozen_relays: dict[str, float] = {}  # "r1" -> monotonic time to thaw
        self.r1 = self._relay("r1")
        self.r2 = self._relay("r2")
        self.actions: dict[str, int] = {}

    def _agent(self, name: str) -> Proc:
        return start_agent(self.tmp, name, "h100-sxm:training,h100-sxm:fragmented", rate_hz=100, interval_ms=100)

    def _relay(self, name: str) -> Proc:
        if name == "r1":
            ups = [self.agents[n].endpoint for n in self.tier1]
        else:
            ups = [f"ipc://{self.tmp}/r1.feed,ipc://{self.tmp}/r1.sync"]
            ups += [self.agents[n].endpoint for n in self.names if n not in self.tier1]
        return start_relay(self.tmp, name, *ups, extra=("--stale-after-s", "3", "--forget-after-s", str(FORGET_S)),
                           ping=False)

    def act(self) -> str:
        now = time.monotonic()
        for name, until in list(self.frozen.items()):
            if now >= until:
                self.agents[name].popen.send_signal(signal.SIGCONT)
                del self.frozen[name]
        for name, until in list(self.down.items()):
            if now >= until:
                self.agents[name] = self._agent(name)
                del self.down[name]
        up = [n for n in self.names if n not in self.down]
        for relay, until in list(self.frozen_relays.items()):
            if now >= until:
                getattr(self, relay).popen.send_signal(signal.SIGCONT)
                del self.frozen_relays[relay]
        what = self.rng.choice(["kill_agent", "kill_agent", "freeze_agent", "take_down", "kill_r1", "kill_r2",
                                "freeze_r1", "client_pause", "nothing"])
        if what == "kill_agent":
            name = self.rng.choice(up)
            self.frozen.pop(name, None)
            self.agents[name].kill()
            self.agents[name] = self._agent(name)
        elif what == "take_down":  # long enough, at times, for the relays to forget it
            name = self.rng.choice(up)
            self.frozen.pop(name, None)
            self.agents[name].kill()
            self.down[name] = now + self.rng.uniform(2.0, 2.5 * FORGET_S)
        elif what == "freeze_agent":
            name = self.rng.choice([n for n in up if n not in self.frozen])
            self.agents[name].popen.send_signal(signal.SIGSTOP)
            self.frozen[name] = now + self.rng.uniform(3.5, 6.0)
        elif what == "freeze_r1" and "r1" not in self.frozen_relays:  # its nodes go stale at r2, then back
            self.r1.popen.send_signal(signal.SIGSTOP)
            self.frozen_relays["r1"] = now + self.rng.uniform(1.0, 6.0)
        elif what == "client_pause":  # a client that does not poll for a while (a GC pause, a busy caller)
            time.sleep(self.rng.uniform(1.0, 5.0))
        elif what == "kill_r1":
            self.frozen_relays.pop("r1", None)
            self.r1.kill()
            self.r1 = self._relay("r1")
        elif what == "kill_r2":
            self.r2.kill()
            self.r2 = self._relay("r2")
        self.actions[what] = self.actions.get(what, 0) + 1
        return what

    def thaw_all(self) -> None:
        for name in list(self.frozen):
            self.agents[name].popen.send_signal(signal.SIGCONT)
        self.frozen.clear()
        for relay in list(self.frozen_relays):
            getattr(self, relay).popen.send_signal(signal.SIGCONT)
        self.frozen_relays.clear()

    def epochs(self) -> dict[str, int]:
        out = {}
        for name, proc in self.agents.items():
            if name in self.down:
                continue
            reply = request(proc.sync, {"op": "ping"}, timeout=2.0)
            if reply is not None:
                out[name] = int(msgpack.unpackb(reply)["epoch"])
        return out

    def stop(self) -> None:
        self.thaw_all()
        for proc in [*self.agents.values(), self.r1, self.r2]:
            proc.kill()


class Invariants:
    """What must hold at every poll: a device's seq never moves back within an epoch."""

    def __init__(self) -> None:
        self.last: dict[tuple[str, int, str], int] = {}
        self.broken: list[str] = []

    def check(self, client: Client) -> None:
        for node in client.view.nodes.values():
            for dev_id, dev in node.devices.items():
                if dev.state is None:
                    continue
                key = (node.name, node.epoch, dev_id)
                if dev.seq < self.last.get(key, 0):
                    self.broken.append(f"{key}: seq {self.last[key]} -> {dev.seq}")
                self.last[key] = dev.seq


def converged(client: Client, epochs: dict[str, int], names: list[str]) -> Optional[str]:
    """None when the view is the truth (``names``: the agents running; the others must be
    gone from it, forgotten by the relays); else what is not yet."""
    now_ns = time.time_ns()
    extra = sorted(set(client.view.nodes) - set(names))
    if extra:
        return f"nodes no agent is: {extra}"
    for name in names:
        node = client.view.nodes.get(name)
        if node is None:
            return f"{name}: not in the view"
        if name in epochs and node.epoch != epochs[name]:
            return f"{name}: epoch {node.epoch:#x}, agent's {epochs[name]:#x}"
        if node.stale:
            return f"{name}: stale"
        if not node.devices:
            return f"{name}: no devices"
        for dev_id, dev in node.devices.items():
            if dev.state is None:
                return f"{name}/{dev_id}: no state"
            if now_ns - dev.ts > 2_000_000_000:
                return f"{name}/{dev_id}: state {(now_ns - dev.ts) / 1e9:.1f} s old"
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=120.0, help="of chaos (default 120)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--agents", type=int, default=6)
    ap.add_argument("--every-s", type=float, default=1.5, help="mean seconds between actions (default 1.5)")
    ap.add_argument("--follow", choices=("r2", "both"), default="r2",
                    help="the client follows r2 (default), or r1 and r2 both (two paths to r1's agents)")
    ap.add_argument("--keep", type=Path, help="keep the processes' logs in this folder")
    args = ap.parse_args()
    if args.agents < 2:
        ap.error(f"--agents must be >= 2, got {args.agents}")

    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="cuagent-chaos-", dir=args.keep))
    fleet = Fleet(tmp, args.agents, rng)
    inv = Invariants()
    follows = ["r2"] if args.follow == "r2" else ["r1", "r2"]
    client = Client([f"ipc://{tmp}/{relay}.feed,ipc://{tmp}/{relay}.sync" for relay in follows])
    ok = False
    try:
        t0 = time.monotonic()
        next_act = t0 + rng.expovariate(1 / args.every_s)
        while time.monotonic() - t0 < args.seconds:
            client.poll(50)
            inv.check(client)
            if time.monotonic() >= next_act:
                what = fleet.act()
                print(f"{time.monotonic() - t0:7.1f} s  {what}", flush=True)
                next_act = time.monotonic() + rng.expovariate(1 / args.every_s)
        fleet.thaw_all()
        print(f"chaos over: {fleet.actions}; settling (at most {SETTLE_S:.0f} s)", flush=True)
        settle0, why = time.monotonic(), "not looked"
        epochs = fleet.epochs()
        while time.monotonic() - settle0 < SETTLE_S:
            client.poll(50)
            inv.check(client)
            why = converged(client, epochs, [n for n in fleet.names if n not in fleet.down]) or ""
            if not why:
                break
        took = time.monotonic() - settle0
        stats = client.stats
        print(f"client: gaps {stats.gaps}, resyncs {stats.resyncs}, restarts {stats.restarts}, "
              f"decode errors {stats.decode_errors}, snapshot timeouts {stats.snapshot_timeouts}, "
              f"old-epoch drops {stats.old_epoch}")
        if why:
            print(f"NOT CONVERGED after {took:.1f} s: {why}")
        else:
            print(f"converged {took:.1f} s after the chaos stopped")
        for broken in inv.broken[:20]:
            print("INVARIANT BROKEN:", broken)
        ok = not why and not inv.broken
    finally:
        client.close()
        fleet.stop()
    if fleet.down:
        print(f"agents left down at the end (must be gone from the view): {sorted(fleet.down)}")
    print(f"logs: {tmp}" if not ok or args.keep else "", end="\n" if not ok or args.keep else "")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
