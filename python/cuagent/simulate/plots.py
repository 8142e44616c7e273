"""Figures from the results (matplotlib, the ``sim`` extra): PNG and SVG files.

Every figure is drawn from the JSON the study returns, so a figure can be redrawn from a
saved ``results.json`` without simulating again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .policies import LABELS


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError("plots need matplotlib: pip install 'cuagent[sim]' (or --no-plots)") from None
    matplotlib.use("Agg")
    # Same bytes for the same figure: no timestamps or random ids in the files.
    matplotlib.rcParams["svg.hashsalt"] = "cuagent"
    matplotlib.rcParams["svg.fonttype"] = "none"
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, out: Path, name: str, formats: tuple[str, ...]) -> list[Path]:
    paths = []
    for fmt in formats:
        p = out / f"{name}.{fmt}"
        meta = {"Date": None} if fmt == "svg" else {"Software": None}
        fig.savefig(p, dpi=110, bbox_inches="tight", metadata=meta)
        paths.append(p)
    return paths


def draw(res: dict[str, Any], out: Path, formats: tuple[str, ...] = ("png", "svg")) -> list[Path]:
    plt = _pyplot()
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    models = list(res["models"])
    base = models[0]
    at = res["at_common_size"]
    names = list(at[base])
    labels = [LABELS.get(n, n) for n in names]
    common = res["common_gpus"]

    # 1. Fewest GPUs per policy, both bounds.
    if res.get("fewest_gpus"):
        fig, ax = plt.subplots(figsize=(7.5, 3.6))
        width = 0.8 / len(models)
        for i, m in enumerate(models):
            vals = [res["fewest_gpus"][m].get(n) for n in names]
            xs = [j + (i - (len(models) - 1) / 2) * width for j in range(len(names))]
            ax.bar(xs, [v or 0 for v in vals], width, label=res["models"][m])
            for x, v in zip(xs, vals):
                ax.text(x, (v or 0) + 0.5, "not met" if v is None else str(v), ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(names)), labels, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("fewest H100s")
        ax.set_title(f"GPUs needed for p95 wait ≤ P0's and p95 slowdown ≤ {res['target']['p95_slowdown']:g}, "
                     "every pod class", fontsize=9)
        ax.legend(fontsize=7)
        written += _save(fig, out, "fewest_gpus", formats)
        plt.close(fig)

    # 2. Slowdown distribution at one size, each model: the share of pods slowed more than x.
    cdfs = res["slowdown_cdf_at_common_size"]
    above = [1 - q / 100 for q in res["slowdown_cdf_percentiles"]]
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.4), squeeze=False, sharey=True)
    for ax, m in zip(axes[0], models):
        for n, lab in zip(names, labels):
            xs = cdfs[m].get(n) or []
            pts = [(x, a) for x, a in zip(xs, above) if x is not None and a > 0]
            if pts and max(p[0] for p in pts) > 1.0 + 1e-9:
                ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", label=lab)
            else:
                ax.plot([], [], label=f"{lab}: none slowed")
        ax.set_yscale("log")
        ax.set_ylim(1e-3, 1.0)
        ax.set_xlabel("slowdown")
        ax.set_title(res["models"][m], fontsize=9)
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel(f"share of pods slowed more (on {common} GPUs)")
    axes[0][-1].legend(fontsize=7, loc="upper right")
    written += _save(fig, out, "slowdown_cdf", formats)
    plt.close(fig)

    # 3. Where each GPU-hour went at one size: demand served vs idle SMs.
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    on_gpus = [n for n in names if n != "fluid"]
    served = [at[base][n]["served_sm_hours"] / 132 for n in on_gpus]
    idle = [(at[base][n]["idle_sm_hours"] or 0) / 132 for n in on_gpus]
    pos = list(range(len(on_gpus)))
    ax.bar(pos, served, label="SMs busy (demand served)")
    ax.bar(pos, idle, bottom=served, label="SMs idle on occupied GPUs")
    ax.set_xticks(pos, [LABELS.get(n, n) for n in on_gpus], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("GPU-hours (SM-hours ÷ 132)")
    ax.set_title(f"Occupied GPU-hours on {common} GPUs, analytic model", fontsize=9)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.32), ncol=2)
    written += _save(fig, out, "gpu_hours", formats)
    plt.close(fig)

    # 4. What binds: SM demand vs memory requested, at the peak and over GPUs hosting shared pods.
    ref = res["reference"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.2))
    a1.bar(["SM\ndemand", "memory\nrequested", "GPUs busy\n(P0)"],
           [ref["peak_sm_demand_gpus"], ref["peak_memory_share_gpus"], ref["peak_occupied_gpus"]],
           color=["tab:blue", "tab:orange", "tab:gray"])
    a1.set_ylabel("GPUs' worth, at the peak")
    a1.set_title("Peak need of the running pods", fontsize=9)
    share_names = [n for n in names if n not in ("P0", "fluid") and at[base][n]["memory_binds_share_reserved"] is not None]
    a2.bar([LABELS.get(n, n).split(" ")[0] for n in share_names],
           [at[base][n]["memory_binds_share_reserved"] * 100 for n in share_names], label="memory reserved")
    a2.plot([LABELS.get(n, n).split(" ")[0] for n in share_names],
            [at[base][n]["memory_binds_share_used"] * 100 for n in share_names], "ko", label="memory held")
    a2.set_ylim(0, 100)
    a2.set_ylabel("% of shared-GPU time")
    a2.set_title("Memory fuller than SMs on GPUs shared", fontsize=9)
    a2.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    fig.tight_layout()
    written += _save(fig, out, "binding_limit", formats)
    plt.close(fig)

    # 5. The searches: every size tried, met or not and why.
    if res.get("searches"):
        fig, ax = plt.subplots(figsize=(7.5, 3.4))
        rows = [n for n in names if res["searches"].get(base, {}).get(n)]
        for y, n in enumerate(rows):
            for g, v in res["searches"][base][n].items():
                reason = v.get("stop_reason") or ""
                if v["met"]:
                    style = dict(marker="o", color="tab:green")
                elif "slowed" in reason or (v["complete"] and "wait" not in reason):
                    style = dict(marker="x", color="tab:red")
                else:
                    style = dict(marker="|", color="tab:orange")
                ax.plot([int(g)], [y], linestyle="none", ms=7, **style)
        ax.plot([], [], "o", color="tab:green", label="met")
        ax.plot([], [], "|", color="tab:orange", label="pods waited")
        ax.plot([], [], "x", color="tab:red", label="pods slowed")
        ax.set_yticks(range(len(rows)), [LABELS.get(n, n) for n in rows], fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("H100s in the cluster (log)")
        ax.set_title("Sizes the search tried (analytic β=0)", fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
        ax.grid(alpha=0.3, axis="x", which="both")
        written += _save(fig, out, "search", formats)
        plt.close(fig)
    return written
