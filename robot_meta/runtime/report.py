"""The session report: ``<session>/report.md`` with PNG plots next to it.

Contents: the return of every adaptation rollout, before (zero-shot) against after adaptation
(and oracle / robust when evaluated), the posterior uncertainty per rollout, joint trajectories
of the first before / after / oracle evaluation rollouts, control-deadline statistics, and the
command that reproduces the session. Plots need matplotlib; on a robot computer without it the
report is written without them (the rollouts are in the session directory as .npz files).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from robot_meta.runtime.session import AdaptationSession, SessionResult


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _plots(session: AdaptationSession, res: SessionResult, root: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    out = []
    # returns per rollout and the evaluation columns
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    k = np.arange(1, len(res.rollouts) + 1)
    ax[0].plot(k, res.rollouts, "o-", label=f"adaptation rollouts ({res.method})")
    for name, val, style in (("before (zero-shot)", res.before, "C3:"), ("after", res.after, "C0--"),
                             ("oracle", res.oracle, "C2-."), ("robust", res.robust, "C7-")):
        if val is not None:
            ax[0].axhline(val, color=style[:2], ls=style[2:], label=name)
    ax[0].set_xlabel("rollout")
    ax[0].set_ylabel("return")
    ax[0].set_title("return per rollout")
    ax[0].grid(alpha=0.3)
    ax[0].legend(fontsize=7)
    names = [n for n in ("before", "after", "oracle", "robust") if res.columns.get(n)]
    vals = [float(np.mean(res.columns[n])) for n in names]
    ax[1].bar(names, vals, color=["C3", "C0", "C2", "C7"][: len(names)])
    for i, n in enumerate(names):
        ax[1].plot([i] * len(res.columns[n]), res.columns[n], "k.", ms=4)
    ax[1].set_title("evaluation: before vs after")
    ax[1].set_ylabel("return")
    fig.tight_layout()
    fig.savefig(root / "returns.png", dpi=100)
    plt.close(fig)
    out.append("returns.png")
    if any(u is not None for u in res.uncertainty):
        fig, ax1 = plt.subplots(figsize=(5, 3.2))
        ax1.plot(k, [np.nan if u is None else u for u in res.uncertainty], "o-")
        ax1.set_xlabel("after rollout")
        ax1.set_ylabel("mean std of z")
        ax1.set_title("posterior uncertainty" if res.method == "context" else "search spread")
        ax1.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(root / "uncertainty.png", dpi=100)
        plt.close(fig)
        out.append("uncertainty.png")
    # joint trajectories of the first evaluation rollout of each column
    completed = session.store.completed()
    joints = list(session.bundle.manifest.joints)
    fig, axes = plt.subplots(1, len(joints), figsize=(5 * len(joints), 3.2), squeeze=False)
    for kind, color in (("before", "C3"), ("after", "C0"), ("oracle", "C2"), ("robust", "C7")):
        first = next((e for e in completed if e["kind"] == kind), None)
        if first is None:
            continue
        a = session.store.load_rollout(first)
        for i in range(len(joints)):
            axes[0][i].plot(a["t"], a["q"][:, i], color=color, label=kind)
    for i, name in enumerate(joints):
        axes[0][i].set_title(f"{name} position")
        axes[0][i].set_xlabel("time [s]")
        axes[0][i].grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(root / "joints.png", dpi=100)
    plt.close(fig)
    out.append("joints.png")
    return out


def write_report(session: AdaptationSession, res: SessionResult) -> Path:
    """Write report.md (and PNGs) into the session directory; returns its path."""
    root = session.store.root
    meta: dict[str, Any] = session.store.meta
    plots = _plots(session, res, root)
    d = res.deadlines
    lines = [
        f"# Adaptation session: {meta['robot']}, {res.method}",
        "",
        f"- bundle: `{meta['bundle_version']}` (manifest sha256 {meta['manifest_sha256'][:12]}...), "
        f"method `{session.bundle.manifest.method}`, task `{session.bundle.manifest.task}`",
        f"- port: `{meta['port']}`; session: `{root}`",
        f"- rollouts: {len(res.rollouts)} adaptation, {session.spec.eval_rollouts} evaluation per "
        f"column, {session.spec.episode_steps or 'full'} steps each, seed {session.spec.seed}",
    ]
    if meta.get("true_params"):
        lines.append(f"- true parameters (emulator only): {meta['true_params']}")
    lines += ["", "## Before against after", "", "| column | return |", "|---|---|"]
    for name, val in (("before (zero-shot)", res.before), ("after adaptation", res.after),
                      ("oracle", res.oracle), ("robust baseline", res.robust)):
        lines.append(f"| {name} | {_fmt(val)} |")
    lines += ["", "## Adaptation rollouts", "", "| rollout | return | uncertainty (mean std of z) |",
              "|---|---|---|"]
    for i, (r, u) in enumerate(zip(res.rollouts, res.uncertainty, strict=False)):
        lines.append(f"| {i + 1} | {r:.2f} | {_fmt(u) if u is None else f'{u:.4f}'} |")
    lines += ["", "## Control deadlines", "",
              f"{d.get('met', 0)} of {d.get('cycles', 0)} cycles met their deadline "
              f"({100 * d.get('fraction_met', 1.0):.3f} %) at {d.get('period_ms', 0):g} ms; "
              f"{d.get('skipped', 0)} release(s) skipped after overruns; worst cycle "
              f"{d.get('worst_work_ms', 0):.2f} ms.", ""]
    for p in plots:
        lines += [f"![{p}]({p})", ""]
    lines += ["## Reproduce", "", "```", meta.get("spec", {}).get("command") or "robot-meta adapt ...",
              "```", ""]
    path = root / "report.md"
    from robot_meta.runtime.atomic import write_atomic

    write_atomic(path, "\n".join(lines))
    return path
