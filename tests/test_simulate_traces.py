"""The simulator on excerpts of the public traces (tests/data/sim, attributed there): reading
them, conservation over a whole run of every policy, same seed -> same figures, and the
``cuagent simulate`` command with its output files and its errors."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from cuagent.cli import main
from cuagent.simulate import cluster, demand, study, traces
from sim_support import CDFS, DUTY, MEMORY, NODES, PAIRS, PODS

# ------------------------------------------------------------------------------ reading


def test_pod_list_excerpt():
    pods = traces.read_pods(PODS)
    # 200 rows: CPU-only pods and pods never scheduled are left out and counted.
    assert len(pods) + sum(pods.skipped.values()) == 200
    assert pods.skipped["no GPU"] > 0 and pods.skipped["never scheduled"] > 0
    assert pods.arrival[0] == 0 and np.all(np.diff(pods.arrival) >= 0)
    assert np.all(pods.duration > 0) and set(np.unique(pods.milli)) <= set(range(1, 1001))
    assert np.all(pods.milli[pods.gpus > 1] == 1000)
    first = pods.name.index("openb-pod-0000")
    assert pods.duration[first] == 12537496 and pods.milli[first] == 1000 and pods.ls[first]
    assert traces.read_node_gpus(NODES) == 32  # 16 P100 nodes of 2 GPUs


def test_series_cdfs_and_pairs_excerpts():
    duty = traces.read_series(DUTY)
    mem = traces.read_series(MEMORY)
    assert len(duty) == 3 and set(duty) == set(mem)
    for k, s in duty.items():
        assert 230 <= s.size <= 241 and s.min() >= 0 and s.max() <= 100  # 4 hours, one value a minute
    cdfs = traces.read_cdfs(CDFS)
    v, c = cdfs[("acme-kalos", "sm_active")]
    assert np.all(np.diff(v) >= 0) and c[0] == 0 and c[-1] == pytest.approx(1.0, abs=0.002)
    pairs = traces.read_pair_throughputs(PAIRS)
    assert len(pairs.jobs) == 4 and np.all(pairs.alone > 0)
    f = pairs.factors()
    assert f.shape == (4, 4) and np.nanmax(f) < 10


def test_a_bad_trace_is_named_in_one_line(tmp_path):
    bad = tmp_path / "pods.csv"
    bad.write_text("name,num_gpu\nx,1\n")
    with pytest.raises(traces.TraceError, match=r"pods\.csv: missing column\(s\)"):
        traces.read_pods(bad)
    bad.write_text(PODS.read_text().splitlines()[0] + "\nopenb-pod-x,1,1,one,500,,LS,Running,0,10,0\n")
    with pytest.raises(traces.TraceError, match=r"pods\.csv:2: column num_gpu: 'one' is not a number"):
        traces.read_pods(bad)
    gz = tmp_path / "duty.csv.gz"
    gz.write_bytes(gzip.compress(b"value,timestamp_anon\n1,2\n"))
    with pytest.raises(traces.TraceError, match=r"duty\.csv\.gz: missing column\(s\) \['container_ip'\]"):
        traces.read_series(gz)
    with pytest.raises(traces.TraceError, match="cannot open"):
        traces.read_cdfs(tmp_path / "absent.csv")


def test_demand_profiles_from_the_excerpts():
    inp = study.load(str(PODS), str(DUTY), str(MEMORY), str(CDFS), str(PAIRS), str(NODES), None, study.Options())
    prof, pods = inp.profiles, inp.pods
    ls = np.flatnonzero(pods.ls)
    assert all(prof.source[p] != "cdf" for p in ls) and all(prof.source[p] == "cdf" for p in np.flatnonzero(~pods.ls))
    # A latency-sensitive pod's demand is 0 exactly when its GenAI pod's duty cycle is 0.
    duty = traces.read_series(DUTY)
    p = int(ls[0])
    series = duty[prof.source[p]]
    minutes = np.arange(series.size)
    d = prof.demand(np.full(series.size, p), (minutes - prof.phase[p]) % prof.length[p])
    assert np.array_equal(d == 0, series[:prof.length[p]] == 0)
    assert 0 <= prof.sm.min() and prof.sm.max() <= 132
    # Memory held never exceeds the request.
    mem = prof.memory(np.arange(len(pods)), np.zeros(len(pods), np.int64))
    assert np.all(mem <= prof.mem_request + 1e-6)


# ------------------------------------------------------------------------------ whole runs


def _replay_conservation(r, gpus: int) -> None:
    """Rebuild every GPU's load from the placements and times alone: nothing given out beyond
    a GPU (memory share, SM shares, MIG slices) at any instant."""
    events = []
    for p, pl in enumerate(r.placements):
        assert pl is not None, "every pod started"
        assert np.isfinite(r.finish[p]) and r.finish[p] >= r.start[p], "every pod finished"
        events.append((r.finish[p], 0, p))  # departures before arrivals at the same instant
        events.append((r.start[p], 1, p))
    milli = np.zeros(gpus)
    sm = np.zeros(gpus)
    mig = np.zeros(gpus, np.int64)
    for _t, kind, p in sorted(events):
        pl = r.placements[p]
        for g in pl.gpus:
            if kind == 1:
                assert mig[g] & pl.mig_mask == 0, "MIG slices given out twice"
                milli[g] += pl.milli
                sm[g] += pl.sm
                mig[g] |= pl.mig_mask
                assert milli[g] <= 1000 and sm[g] <= 132
            else:
                milli[g] -= pl.milli
                sm[g] -= pl.sm
                mig[g] &= ~pl.mig_mask
    assert not milli.any() and not sm.any() and not mig.any()


@pytest.fixture(scope="module")
def excerpt():
    # The first 120 rows: an 8-GPU pod, long services and short batch pods, quick to run.
    return study.load(str(PODS), str(DUTY), str(MEMORY), str(CDFS), str(PAIRS), str(NODES), None, study.Options(),
                      limit=120)


@pytest.mark.parametrize("policy", ["P0", "P1", "P2", "P2f", "P3", "P4", "fluid"])
def test_every_policy_conserves_and_finishes_every_pod(excerpt, policy):
    opts = study.Options()
    # P0, P3 and the fluid bound slow nothing down in either model: one run each.
    for model in study.models(excerpt, opts)[:1 if policy in study.MODEL_FREE else None]:
        r = study.simulate(excerpt, policy, model, 24, opts)
        assert r.complete, r.stop_reason
        assert np.all(np.isfinite(r.slowdown)) and np.all(r.slowdown >= 1.0)
        assert np.all(r.wait >= 0)
        if policy != "fluid":
            _replay_conservation(r, 24)
            assert r.idle_sm_s >= -1e-6  # SMs served never exceed SMs occupied


def test_too_small_a_cluster_stops_with_the_reason(excerpt):
    r = study.simulate(excerpt, "P0", study.models(excerpt, study.Options())[0], 4, study.Options())
    assert not r.complete and "can never be placed" in r.stop_reason  # an 8-GPU pod on 4 GPUs


def _strip(x):
    """The figures without wall-clock times."""
    if isinstance(x, dict):
        return {k: _strip(v) for k, v in x.items() if k not in ("wall_s", "simulated_seconds")}
    if isinstance(x, list):
        return [_strip(v) for v in x]
    return x


def test_same_seed_same_figures_and_another_seed_differs():
    def once(seed: int):
        opts = study.Options(seed=seed, gpus=16, bandwidths=(0.5,), policies=("P0", "P2"))
        inp = study.load(str(PODS), str(DUTY), str(MEMORY), str(CDFS), str(PAIRS), str(NODES), None, opts, limit=60)
        return json.dumps(_strip(study.check_finite(study.run(inp, opts))), sort_keys=True)

    a, b, c = once(7), once(7), once(8)
    assert a == b
    assert a != c


# ------------------------------------------------------------------------------ command


def _args(tmp_path, *extra):
    return ["simulate", "--pods", str(PODS), "--nodes", str(NODES), "--duty", str(DUTY), "--memory", str(MEMORY),
            "--cdfs", str(CDFS), "--pairs", str(PAIRS), "--quiet", *extra]


def test_simulate_command_searches_and_writes_table_json_and_plots(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "out"
    assert main(_args(tmp_path, "--out", str(out), "--bandwidth", "0.5", "--limit", "60",
                      "--policies", "P0,P2f,P3,fluid")) == 0
    printed = capsys.readouterr().out
    assert "Assumptions:" in printed and "| P2f P1 + scorer as filter |" in printed
    res = json.loads((out / "results.json").read_text())
    assert set(res["fewest_gpus"]) == {"analytic-b0", "measured"}
    fewest = res["fewest_gpus"]["analytic-b0"]
    assert set(fewest) == {"P0", "P2f", "P3", "fluid"}
    # The fluid bound needs no more GPUs than any policy that met the target.
    assert all(fewest["fluid"] <= n for n in fewest.values() if n is not None)
    assert res["reference"]["gpus"] == 32 and res["at_common_size"]["analytic-b0"]["P0"]["complete"]
    assert (out / "table.md").read_text().startswith("| policy |")
    for name in ("fewest_gpus", "slowdown_cdf", "gpu_hours", "binding_limit", "search"):
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (out / f"{name}.svg").read_bytes()[:400]


@pytest.mark.parametrize("extra, needle", [
    (["--policies", "P1,P9"], "--policies"),
    (["--bandwidth", "0,-1"], "--bandwidth"),
    (["--gpus-per-node", "0"], "--gpus-per-node"),
    (["--sizing-percentile", "0"], "--sizing-percentile"),
    (["--seed", "-1"], "--seed"),
    (["--horizon-s", "nan"], "--horizon-s"),
])
def test_simulate_command_rejects_bad_values_in_one_line(tmp_path, capsys, extra, needle):
    try:
        status = main(_args(tmp_path, *extra))
    except SystemExit as e:  # a value out of its range ends the parse, as in every subcommand
        status = e.code
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cuagent simulate: error: ") and needle in err[0]


def test_simulate_command_names_a_missing_trace(tmp_path, capsys):
    args = _args(tmp_path)
    args[args.index("--cdfs") + 1] = str(tmp_path / "nope.csv")
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.csv: cannot open" in err[0]


def test_h100_model_is_the_measured_preset():
    topo = cluster.h100_topology()
    assert topo.units == 132 and topo.layout["gpc"].max() == 8
    assert np.bincount(topo.layout["gpc"]).tolist() == [8, 16, 16, 16, 16, 16, 18, 18, 8]
    assert demand.DEFAULT_CDF_CLUSTERS == ("acme-seren", "acme-kalos")
