"""Recordings for system identification from session directories on disk.

Both an adaptation session (``robot-meta adapt``) and a sysid excitation session
(``robot-meta sysid`` without ``--from``) are :class:`~robot_meta.runtime.session_store.
SessionStore` directories: ``session.json`` names the robot, each completed rollout is an npz
with the joint readings ``q``, ``dq`` (n + 1 rows, hardware-map joint order) and the actions
sent ``action`` (n rows). Each becomes a :class:`~robot_meta.calibration.sysid.Recording`.
Everything is checked before anything is fitted or written: a session of another robot, a
rollout file that is missing, truncated or inconsistent raises :class:`SysidError` naming it.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from robot_meta.calibration.sysid import Recording, SysidError
from robot_meta.runtime.session_store import SessionStore
from robot_meta.sim.robots.robot_def import RobotDef


def load_session(root: str | Path, robot: RobotDef) -> list[tuple[Recording, bool]]:
    """(recording, held out) per completed rollout of one session directory. Excitation
    sessions mark their held-out rollout; adaptation rollouts are all for fitting."""
    root = Path(root)
    if not (root / "session.json").exists():
        raise SysidError(f"{root}: not a session directory (no session.json); give a directory "
                         "written by `robot-meta adapt` or `robot-meta sysid`")
    store = SessionStore(root)
    meta = store.meta
    if meta.get("robot") != robot.name:
        raise SysidError(f"{root}: a session of robot {meta.get('robot')!r}, but --robot is "
                         f"{robot.name!r}; give sessions recorded on this robot")
    hw_joints = [j.joint for j in robot.hardware_map.joints]
    order = [hw_joints.index(j) for j in robot.joints]
    dt = float(meta.get("control_dt", robot.control_dt))
    out = []
    entries = store.completed()
    if not entries:
        raise SysidError(f"{root}: no completed rollout in the journal")
    for e in entries:
        path = store.rollouts_dir / e["file"]
        try:
            arrays = store.load_rollout(e)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            raise SysidError(f"{path}: unreadable rollout file ({err}); the log is truncated or "
                             "corrupt. Remove it and its journal line, or re-record") from err
        missing = [k for k in ("q", "dq", "action") if k not in arrays]
        if missing:
            raise SysidError(f"{path}: missing array(s) {missing}; not a rollout log")
        q, dq, a = arrays["q"], arrays["dq"], arrays["action"]
        if q.ndim != 2 or q.shape[1] != len(hw_joints):
            raise SysidError(f"{path}: readings of shape {q.shape}, but {robot.name} has "
                             f"{len(hw_joints)} joints")
        n = int(e.get("steps", len(a)))
        if len(a) != n or len(q) != n + 1 or len(dq) != n + 1:
            raise SysidError(f"{path}: the journal says {n} steps, but the file holds {len(a)} "
                             f"actions and {len(q)} readings; the log is truncated")
        pre = arrays.get("pre_action")
        t = arrays.get("t")
        rec = Recording(q[:, order], dq[:, order], a, dt, f"{root.name}/{e['file']}",
                        None if pre is None else np.asarray(pre, dtype=float),
                        None if t is None or len(t) != len(q) else np.asarray(t, dtype=float))
        rec.check(robot)
        out.append((rec, bool(e.get("heldout", False)) or e.get("kind") == "heldout"))
    return out


def load_recordings(roots: Sequence[str | Path], robot: RobotDef
                    ) -> tuple[list[Recording], list[Recording]]:
    """(fit, held out) recordings of session directories. Without a marked held-out rollout,
    the last rollout is held out when there are at least two."""
    fit: list[Recording] = []
    held: list[Recording] = []
    for root in roots:
        for rec, h in load_session(root, robot):
            (held if h else fit).append(rec)
    if not held and len(fit) >= 2:
        held.append(fit.pop())
    if not fit:
        raise SysidError("no recording left to fit after holding one out; record more rollouts")
    return fit, held
