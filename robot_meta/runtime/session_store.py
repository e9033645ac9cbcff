"""A few-shot adaptation session on disk: nothing completed is ever lost.

    <session>/session.json          what was asked (robot, bundle, method, K, seed), atomic
    <session>/journal.jsonl         append-only events (fsync'd): rollout_done, adapted, ...
    <session>/rollouts/0003.npz     each completed rollout's transitions, written atomically
    <session>/adapted.json          the latest adaptation state, written atomically

A rollout file appears only when its rollout completed (temp file + fsync + rename), and its
journal line is written after the file. After ``kill -9``, :meth:`SessionStore.completed`
returns every rollout whose file and journal line both exist; ``--resume`` continues from there.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import numpy as np

from robot_meta.errors import UserError
from robot_meta.runtime.atomic import append_line, read_lines, write_atomic, write_json_atomic


class SessionError(UserError):
    """A session directory is missing, or belongs to another robot or bundle."""


class SessionStore:
    """One session directory."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.rollouts_dir = self.root / "rollouts"
        self.journal = self.root / "journal.jsonl"
        self.meta_path = self.root / "session.json"
        self.adapted_path = self.root / "adapted.json"

    @classmethod
    def create(cls, root: str | Path, meta: dict[str, Any]) -> SessionStore:
        s = cls(root)
        if s.meta_path.exists():
            raise SessionError(f"{root}: a session already exists here; use --resume {root}")
        s.rollouts_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(s.meta_path, {**meta, "created": time.time()})
        s.log("session_start", **meta)
        return s

    @classmethod
    def open(cls, root: str | Path) -> SessionStore:
        s = cls(root)
        if not s.meta_path.exists():
            raise SessionError(f"{root}: not a session directory (no session.json)")
        s.log("session_resume")
        return s

    @property
    def meta(self) -> dict[str, Any]:
        import json

        meta: dict[str, Any] = json.loads(self.meta_path.read_text())
        return meta

    def log(self, event: str, **fields: Any) -> None:
        """Append one event to the journal (fsync'd)."""
        append_line(self.journal, {"event": event, "time": time.time(), **fields})

    def events(self) -> list[dict[str, Any]]:
        return read_lines(self.journal)

    def save_rollout(self, index: int, kind: str, arrays: dict[str, np.ndarray],
                     summary: dict[str, Any]) -> Path:
        """Write one completed rollout atomically, then journal it."""
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
        path = self.rollouts_dir / f"{index:04d}-{kind}.npz"
        write_atomic(path, buf.getvalue())
        self.log("rollout_done", index=index, kind=kind, file=path.name, **summary)
        return path

    def completed(self) -> list[dict[str, Any]]:
        """Journal entries of completed rollouts whose files are intact, in order."""
        out = []
        for e in self.events():
            if e["event"] == "rollout_done" and (self.rollouts_dir / e["file"]).exists():
                out.append(e)
        return out

    def load_rollout(self, entry: dict[str, Any]) -> dict[str, np.ndarray]:
        with np.load(self.rollouts_dir / entry["file"], allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def save_adapted(self, state: dict[str, Any]) -> None:
        write_json_atomic(self.adapted_path, state)
        self.log("adapted", **{k: v for k, v in state.items() if isinstance(v, int | float | str)})
