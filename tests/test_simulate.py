"""The placement simulator on cases small enough to check by hand: where each policy puts
three jobs on two GPUs, how time slicing, SM shares and MIG slow a pod, MIG's placement rules,
and that P2 decides with the extender's own Scorer on a feed filled through the wire codec."""

from __future__ import annotations

import numpy as np
import pytest

from cuagent import protocol
from cuagent.scheduling import Scorer
from cuagent.scheduling.scorer import Ranking
from cuagent.simulate import cluster, engine, metrics, slowdown
from cuagent.simulate.cluster import mig_profile_for, mig_start, sm_share
from sim_support import run

# Two GPUs on one node. A and B share a GPU's memory (0.5 and 0.3 of it); C wants a whole GPU.
THREE = [
    {"name": "A", "t": 0, "run": 600, "milli": 500, "sm": 40},
    {"name": "B", "t": 10, "run": 600, "milli": 300, "sm": 30},
    {"name": "C", "t": 20, "run": 600, "milli": 1000, "sm": 100},
]

# policy -> per job (GPUs, start s)
EXPECTED = {
    # Whole GPUs: B takes the second GPU, so C waits for A to finish at 600.
    "P0": [((0,), 0), ((1,), 10), ((0,), 600)],
    # Best fit by request: B joins A (room 500 >= 300), C gets the empty GPU at once.
    "P1": [((0,), 0), ((0,), 10), ((1,), 20)],
    # The scorer prefers the idle GPU for B (GPU 0 has 40 SMs busy): C waits as under P0.
    "P2": [((0,), 0), ((1,), 10), ((0,), 600)],
    # The scorer as a filter: GPU 0 has the 30 idle SMs B needs, so P1's best fit stands.
    "P2f": [((0,), 0), ((0,), 10), ((1,), 20)],
    # MIG: A and B both on GPU 0 in 3g.40gb instances, C on the other GPU.
    "P3": [((0,), 0), ((0,), 10), ((1,), 20)],
    # SM shares: A and B on the fuller GPU, C the empty one.
    "P4": [((0,), 0), ((0,), 10), ((1,), 20)],
}


@pytest.mark.parametrize("policy", sorted(EXPECTED))
def test_three_jobs_on_two_gpus(policy):
    r, _ = run(THREE, policy)
    assert r.complete
    assert [(p.gpus, float(s)) for p, s in zip(r.placements, r.start)] == EXPECTED[policy]
    assert np.all(r.slowdown == 1.0)  # 40 + 30 SMs fit in 132: nobody slows
    assert np.array_equal(r.finish, r.start + 600)


def test_three_jobs_fluid_bound_starts_everything():
    r, _ = run(THREE, "fluid")
    assert r.complete and list(r.start) == [0, 10, 20] and all(p.gpus == () for p in r.placements)


def test_mig_and_share_shapes_of_the_three_jobs():
    r, _ = run(THREE, "P3")
    # A has 0.5 of the memory -> 3g.40gb at slot 0; B 0.3 -> also 4 slices -> 3g.40gb at slot 4.
    assert [p.profile for p in r.placements] == ["3g.40gb", "3g.40gb", "7g.80gb"]
    assert [p.mig_mask for p in r.placements] == [0x0F, 0xF0, 0xFF]
    assert [p.alloc for p in r.placements] == [60, 60, 132]
    r, _ = run(THREE, "P4")
    assert [p.sm for p in r.placements] == [40, 32, 132]  # B's 30 SMs rounded up to 8-SM granules


def test_time_slicing_two_saturating_pods_halves_their_speed():
    two = [{"t": 0, "run": 600, "milli": 500, "sm": 132}, {"t": 0, "run": 600, "milli": 500, "sm": 132}]
    r, _ = run(two, "P1")
    assert [p.gpus for p in r.placements] == [(0,), (0,)]
    assert r.finish.tolist() == pytest.approx([1200, 1200])  # 132 / (132 + 132) each
    assert r.slowdown.tolist() == pytest.approx([2.0, 2.0])
    # P0 gives each its own GPU: no slowdown, but two GPUs.
    r, _ = run(two, "P0")
    assert [p.gpus for p in r.placements] == [(0,), (1,)] and r.slowdown.tolist() == [1.0, 1.0]
    # The fluid bound pools the two GPUs' SMs: 264 SMs of demand on 264 SMs, nobody slows...
    r, _ = run(two, "fluid")
    assert r.slowdown.tolist() == [1.0, 1.0]
    # ...and on one GPU's worth it slows both as time slicing does.
    r, _ = run(two, "fluid", gpus=1, per_node=1)
    assert r.slowdown.tolist() == pytest.approx([2.0, 2.0])


def test_scorer_as_filter_keeps_a_pod_off_a_busy_gpu_until_it_frees():
    busy = [{"t": 0, "run": 600, "milli": 400, "sm": 120}, {"t": 60, "run": 600, "milli": 400, "sm": 120}]
    r, _ = run(busy, "P1", gpus=1, per_node=1)
    assert r.start.tolist() == [0, 60] and r.slowdown.max() > 1.5  # packed by request, both slowed
    r, feed = run(busy, "P2f", gpus=1, per_node=1)
    # The feed shows 120 of 132 SMs busy: the second pod waits for the first to leave.
    assert r.start.tolist() == [0, 600] and r.slowdown.tolist() == [1.0, 1.0]
    assert feed is not None and feed.rank_calls >= 2


def test_scorer_filter_retries_on_a_timer_as_a_tenant_goes_quiet():
    # A service busy on 120 SMs for 10 minutes, then idle for the rest of its life; B needs 60.
    quiet = [{"t": 0, "run": 7200, "milli": 400, "sm": [120] * 10 + [0] * 200, "ls": True},
             {"t": 60, "run": 600, "milli": 400, "sm": 60}]
    r, _ = run(quiet, "P2f", gpus=1, per_node=1)
    # No pod leaves before B starts: the minute retries find room once the horizon (300 s)
    # has seen A idle long enough.
    assert 600 < r.start[1] < 1200 and r.start[1] % 60 == 0
    assert r.slowdown.tolist() == [1.0, 1.0]


def test_a_share_below_demand_slows_batch_work_but_not_a_service_lifetime():
    # Sized for 64 SMs (share 64), actually busy on 128: speed 64/128 = 0.5.
    jobs = [{"t": 0, "run": 600, "milli": 400, "sm": 128, "sizing": 64},
            {"t": 0, "run": 600, "milli": 400, "sm": 128, "sizing": 64, "ls": True}]
    r, _ = run(jobs, "P4", gpus=1, per_node=1)
    assert [p.sm for p in r.placements] == [64, 64]
    assert r.finish.tolist() == pytest.approx([1200, 600])  # the batch pod takes twice as long
    assert r.slowdown.tolist() == pytest.approx([2.0, 2.0])  # the service ran at half speed all its life


def test_demand_changes_on_the_minute_grid():
    # Minute 0: 132 + 132 SMs (half speed); minute 1 on: 66 + 66 (full speed). Work 90 s:
    # 30 s done in minute 0, the other 60 s from 60 to 120.
    jobs = [{"t": 0, "run": 90, "milli": 500, "sm": [132, 66, 66, 66]},
            {"t": 0, "run": 90, "milli": 500, "sm": [132, 66, 66, 66]}]
    r, _ = run(jobs, "P1", gpus=1, per_node=1)
    assert r.finish.tolist() == pytest.approx([120, 120])
    assert r.slowdown.tolist() == pytest.approx([120 / 90, 120 / 90])


def test_a_pod_that_cannot_fit_waits_and_a_later_one_does_not_queue_behind_it():
    jobs = [{"t": 0, "run": 100, "milli": 700, "sm": 10}, {"t": 1, "run": 100, "milli": 700, "sm": 10},
            {"t": 2, "run": 100, "milli": 200, "sm": 10}]
    r, _ = run(jobs, "P1", gpus=1, per_node=1)
    assert r.start.tolist() == [0, 100, 2]  # the small one fits beside the first at once
    assert r.wait.tolist() == [0, 99, 0]


def test_multi_gpu_pod_takes_a_whole_node():
    jobs = [{"t": 0, "run": 50, "milli": 300, "sm": 10}, {"t": 1, "run": 100, "gpus": 2, "sm": 50}]
    r, _ = run(jobs, "P1", gpus=4, per_node=2)
    # The shared pod sits on node 0; the 2-GPU pod needs a node with 2 empty GPUs: node 1.
    assert [p.gpus for p in r.placements] == [(0,), (2, 3)]


def test_mig_profiles_and_placement_rules():
    assert mig_profile_for(0.1, 10).name == "1g.10gb"
    assert mig_profile_for(0.1, 20).name == "1g.20gb"  # 16 SMs are too few
    assert mig_profile_for(0.2, 30).name == "2g.20gb"
    assert mig_profile_for(0.3, 10).name == "3g.40gb"  # 0.3 of memory needs 4 slices
    assert mig_profile_for(0.5, 62).name == "4g.40gb"
    assert mig_profile_for(0.5, 70).name == "7g.80gb"
    prof = {p.name: p for p in cluster.MIG_PROFILES}
    used = prof["3g.40gb"].mask(0)  # slices 0-3
    assert mig_start(used, prof["4g.40gb"]) is None  # a 4g starts only at slot 0
    assert [mig_start(used, prof[n]) for n in ("1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb")] == [4, 4, 4, 4]
    used |= prof["2g.20gb"].mask(4)
    assert [mig_start(used, prof[n]) for n in ("1g.10gb", "1g.20gb", "2g.20gb")] == [6, 6, None]
    assert mig_start(0, prof["7g.80gb"]) == 0 and mig_start(1, prof["7g.80gb"]) is None
    assert [sm_share(x, 132) for x in (0.0, 1, 8, 8.1, 40, 131, 500)] == [8, 8, 8, 16, 40, 132, 132]


def test_analytic_and_measured_speeds_by_hand():
    demand = np.array([[100.0], [64.0], [32.0], [0.0]])
    gpu = np.array([0, 0, 1, 1])
    part = np.array([False, False, True, True])
    alloc = np.array([132.0, 132.0, 16.0, 16.0])
    iso = np.array([False, False, True, True])
    speed, cap = slowdown.speeds(slowdown.Model("analytic"), demand, 132, gpu, 2, part, alloc, iso, None)
    assert speed[:, 0].tolist() == pytest.approx([132 / 164, 132 / 164, 0.5, 1.0])
    speed, _ = slowdown.speeds(slowdown.Model("analytic", 0.5), demand, 132, gpu, 2, part, alloc, iso, None)
    # Bandwidth: each time-sliced pod is slowed by the other's activity; MIG is isolated.
    assert speed[:, 0].tolist() == pytest.approx([132 / 164 / (1 + 0.5 * 64 / 132), 132 / 164 / (1 + 0.5 * 100 / 132),
                                                   0.5, 1.0])
    factors = np.array([[0.5, 0.8], [0.25, 1.0]])  # job 0 beside job 1 runs at 0.8 of alone
    job = np.array([0, 1, 0, 1])
    pairs = slowdown.penalties(factors, job, gpu, iso, np.arange(4))
    speed, _ = slowdown.speeds(slowdown.Model("measured"), demand, 132, gpu, 2, part, alloc, iso, pairs)
    assert speed[:, 0].tolist() == pytest.approx([0.8, 0.25, 0.5, 1.0])
    # An idle co-runner (demand 0) slows nobody and is not slowed.
    speed, _ = slowdown.speeds(slowdown.Model("measured"), np.array([[100.0], [0.0]]), 132, np.array([0, 0]), 1,
                               np.array([False, False]), np.array([132.0, 132.0]), np.array([False, False]),
                               slowdown.penalties(factors, np.array([0, 1]), np.array([0, 0]),
                                                  np.array([False, False]), np.arange(2)))
    assert speed[:, 0].tolist() == [1.0, 1.0]


class RecordingScorer(Scorer):
    """The extender's Scorer, recording what the simulator asks of it and what it answers."""

    calls: list = []

    def rank(self, request, now_ns=None, nodes=None):
        ranking = super().rank(request, now_ns, nodes)
        RecordingScorer.calls.append((request, now_ns, list(nodes or []),
                                      {d.device: (d.score, d.eligible) for d in ranking.devices()}))
        return ranking


def test_p2_ranks_with_the_extenders_scorer_on_a_wire_decoded_feed():
    RecordingScorer.calls = []
    r, feed = run(THREE, "P2", scorer_factory=RecordingScorer)
    assert feed is not None and type(feed.scorer) is RecordingScorer and isinstance(feed.scorer, Scorer)
    # A (t=0), B (t=10) and C when A left (t=600); C at t=20 had no candidate (no empty GPU).
    assert [c[1] for c in RecordingScorer.calls] == [feed_ns(0), feed_ns(10), feed_ns(600)]
    assert feed.rank_calls == 3
    # B went where the scorer's ranking said: the best-scored eligible device.
    request, _, nodes, scores = RecordingScorer.calls[1]
    assert request.shared and request.gpus == pytest.approx(0.3) and request.units == 30
    best = max((s, d) for d, (s, e) in scores.items() if e)[1]
    assert best == feed.cluster.device_name(r.placements[1].gpus[0]) == "GPU-sim-00001"
    assert scores["GPU-sim-00000"][0] < scores["GPU-sim-00001"][0]
    # What the scorer read came through the wire codec, as a Client decodes it.
    dv = feed.view.nodes["node-0000"].devices["GPU-sim-00000"]
    assert isinstance(dv.state, protocol.State) and dv.topology.units == 132
    assert dv.topology.counts["gpc"] == 9  # the measured H100 layout: 8 GPCs + SMs the probe could not place
    # The default scorer is the extender's class itself.
    from cuagent.scheduling import extender

    _, feed2 = run(THREE, "P2")
    assert type(feed2.scorer) is extender.Scorer and isinstance(feed2.scorer.rank(
        feed2.request(__import__("cuagent.simulate.policies", fromlist=["Ask"]).Ask(1, 300, 30, 0)), feed_ns(700)),
        Ranking)


def feed_ns(t: float) -> int:
    from cuagent.simulate.feed import T0_NS

    return T0_NS + int(t * 1e9)


def _result(gpus: int, wait: float, slow: float) -> engine.Result:
    n = 20
    return engine.Result("P1", "analytic-b0", gpus, n, 132, True, "", np.full(n, wait), np.full(n, slow),
                         np.zeros(n, bool), np.zeros(n, bool), np.ones(n, np.int64), np.zeros(n, np.int64), [""] * n)


def test_fewest_gpu_search_finds_the_threshold_and_gives_up_when_unreachable():
    target = metrics.Target(wait_s=(0.0, 0.0, 0.0), slowdown=1.05)
    seen: list[int] = []

    def queueing_below_37(n: int):
        seen.append(n)
        return _result(n, 0.0 if n >= 37 else 60.0, 1.0)

    n, tried = metrics.fewest_gpus(queueing_below_37, target, hint=20, floor=8, ceiling=1000)
    assert n == 37 and set(tried) == set(seen) and len(seen) < 15
    n, _ = metrics.fewest_gpus(queueing_below_37, target, hint=80, floor=8, ceiling=1000)
    assert n == 37
    # Slowed at every size: the search checks the ceiling once instead of walking up to it.
    seen.clear()
    n, _ = metrics.fewest_gpus(lambda g: (seen.append(g), _result(g, 0.0, 1.3))[1], target, 40, 8, 1000)
    assert n is None and seen == [40, 1000]


def test_the_target_holds_per_pod_class_so_few_big_pods_cannot_be_starved():
    r = _result(40, 0.0, 1.0)
    r.klass[-1] = 2  # one multi-GPU pod among 20...
    r.wait[-1] = 3600.0  # ...waited an hour: the p95 over all pods is still 0
    assert metrics.pct(r.wait, 95) == 0.0
    target = metrics.Target(wait_s=(0.0, 0.0, 0.0), slowdown=1.05)
    assert target.failing(r) == (True, False) and not target.met(r)
    assert metrics.by_class(r, r.wait) == {"shared": 0.0, "multi": 3600.0}
    # The same run meets a pooled target (--pooled-target): the starved pod hides in the 5 %.
    assert metrics.Target(wait_s=(0.0, 0.0, 0.0), slowdown=1.05, pooled=True).met(r)
