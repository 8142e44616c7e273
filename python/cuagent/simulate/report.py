"""The results as text: the assumptions, then one table row per policy (Markdown)."""

from __future__ import annotations

from typing import Any, Optional

from .policies import LABELS


def _f(v: Optional[float], fmt: str = "{:.2f}", none: str = "—") -> str:
    return none if v is None else fmt.format(v)


def table(res: dict[str, Any]) -> str:
    fewest = res.get("fewest_gpus", {})
    models = list(res["models"])
    base = models[0]
    measured = "measured" if "measured" in models else None
    at = res["at_common_size"]
    common = res["common_gpus"]
    reclaimed = res.get("idle_sm_hours_reclaimed", {})
    sweep = res.get("bandwidth_sweep", {})
    p0 = fewest.get(base, {}).get("P0")
    betas = sorted({k for s in sweep.values() for k in s if k.startswith("analytic-b")}, key=lambda k: float(k[10:]))
    head = ["policy"]
    if fewest:
        head += ["fewest GPUs (analytic β=0)"] + (["fewest GPUs (measured)"] if measured else []) + ["vs P0"]
    head += [f"pods waiting @{common} (multi-GPU: max wait h)", f"p95 / p99 slowdown @{common} (analytic β=0)"]
    if measured:
        head += [f"p95 slowdown @{common} (measured)"]
    head += [f"GPU-hours @{common}", "idle SM-hours reclaimed vs P0", "memory binds (reserved / held)"]
    head += ["p95 slowdown at own fewest: " + ", ".join(f"β={float(b[10:]):g}" for b in betas)
             + (", measured" if measured else "")]
    rows = []
    for name, s in at[base].items():
        row = [LABELS.get(name, name)]
        if fewest:
            n_a = fewest.get(base, {}).get(name)
            row.append(_f(n_a, "{:d}", "not met"))
            if measured:
                row.append(_f(fewest.get(measured, {}).get(name), "{:d}", "not met"))
            row.append(f"{(n_a / p0 - 1) * 100:+.0f} %" if (n_a and p0) else "—")
        multi = s.get("wait_s_multi_gpu_pods") or {}
        row.append(f"{s['pods_waited']} ({_f((multi.get('max') or 0) / 3600, '{:.1f}')})")
        row.append(f"{_f(s['slowdown']['p95'])} / {_f(s['slowdown']['p99'])}")
        if measured:
            row.append(_f(at[measured][name]["slowdown"]["p95"]))
        row.append(_f(s["occupied_gpu_hours"], "{:,.0f}") if name != "fluid" else "—")
        row.append(_f(reclaimed.get(name), "{:,.0f}") if name != "fluid" else "—")
        mb_r, mb_u = s["memory_binds_share_reserved"], s["memory_binds_share_used"]
        row.append(f"{_f(mb_r, '{:.0%}')} / {_f(mb_u, '{:.0%}')}" if name not in ("fluid", "P0") else "—")
        if name in sweep:
            vals = [_f(sweep[name][b]["p95_slowdown"]) for b in betas]
            if measured and "measured" in sweep[name]:
                vals.append(_f(sweep[name]["measured"]["p95_slowdown"]))
            row.append(f"{' / '.join(vals)} @{sweep[name]['gpus']}")
        else:
            row.append("1.00 (nothing shares)" if name in ("P0", "fluid") else "1.00 (isolated)")
        rows.append(row)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def text(res: dict[str, Any]) -> str:
    ref = res["reference"]
    out = ["Assumptions:"] + [f"- {a}" for a in res["assumptions"]]
    out.append("")
    out.append(f"Reference: P0 on {ref['gpus']} GPUs: p95 wait {_f(ref['wait_s']['p95'], '{:.0f}')} s, "
               f"peak {ref['peak_occupied_gpus']} GPUs busy; peak demand of the running pods: "
               f"{ref['peak_sm_demand_gpus']:.1f} GPUs of SMs, {ref['peak_memory_share_gpus']:.1f} GPUs of requested memory.")
    out.append(f"Target: {res['target']['text']}. Models: " + "; ".join(f"{k}: {v}" for k, v in res["models"].items()))
    out.append("")
    out.append(table(res))
    return "\n".join(out)
