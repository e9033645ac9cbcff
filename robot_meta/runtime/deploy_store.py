"""The deploy directory on the robot: installed bundles with version history.

    <deploy_dir>/bundles/v0003-1a2b3c4d/   a verified copy of each installed bundle
    <deploy_dir>/current -> bundles/v0003-1a2b3c4d     the active version (a symlink)
    <deploy_dir>/deployments.jsonl         append-only record of installs and rollbacks
    <deploy_dir>/adapted/                  the adaptation state that `run` uses (from `adapt`)

Installing copies the bundle through the one bundle writer
(:func:`robot_meta.export.bundle_writer.copy_bundle`: a temporary directory, the copy verified,
renamed into ``bundles/``) and then swaps the ``current`` symlink with an atomic rename, so a
crash at any point leaves either the old version or the new one active.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from robot_meta.errors import UserError
from robot_meta.export.bundle_writer import copy_bundle
from robot_meta.export.manifest import Manifest, manifest_sha
from robot_meta.runtime.atomic import append_line, fsync_dir, read_lines


class DeployError(UserError):
    """Nothing to roll back to, or the deploy directory is damaged."""


class DeployStore:
    """Version history of bundles installed on one robot."""

    def __init__(self, deploy_dir: str | Path):
        self.root = Path(deploy_dir).expanduser()
        self.bundles = self.root / "bundles"
        self.current_link = self.root / "current"
        self.records = self.root / "deployments.jsonl"
        self.adapted_dir = self.root / "adapted"

    # ---- queries -------------------------------------------------------------------------
    def versions(self) -> list[str]:
        """Installed version names, oldest first."""
        if not self.bundles.exists():
            return []
        return sorted(p.name for p in self.bundles.iterdir() if p.name.startswith("v"))

    def current(self) -> Path | None:
        """The active bundle directory, or None before the first flash."""
        if not self.current_link.is_symlink():
            return None
        target = self.root / os.readlink(self.current_link)
        return target if target.is_dir() else None

    def history(self) -> list[dict[str, Any]]:
        """Every install and rollback record, oldest first."""
        return read_lines(self.records)

    # ---- changes -------------------------------------------------------------------------
    def _point_current(self, version: str) -> None:
        tmp = self.root / f".current.tmp{os.getpid()}"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(Path("bundles") / version, tmp)
        os.replace(tmp, self.current_link)  # atomic switch
        fsync_dir(self.root)

    def install(self, bundle_dir: str | Path, record: dict[str, Any]) -> Path:
        """Copy a verified bundle in as a new version, make it current, and log ``record``."""
        src = Path(bundle_dir)
        manifest = Manifest.read(src)
        manifest.verify_files(src)
        self.bundles.mkdir(parents=True, exist_ok=True)
        n = len(self.versions()) + 1
        version = f"v{n:04d}-{manifest_sha(src)[:8]}"  # the manifest hash names it
        copy_bundle(src, self.bundles / version, overwrite=False)  # the copy is verified too
        previous = self.current()
        self._point_current(version)
        append_line(self.records, {"event": "install", "version": version, "time": time.time(),
                                   "previous": previous.name if previous else None, **record})
        return self.bundles / version

    def rollback(self) -> Path:
        """Make the version that was current before the active one current again."""
        cur = self.current()
        if cur is None:
            raise DeployError(f"{self.root}: nothing is installed, so there is nothing to roll back")
        prev = None
        for rec in reversed(self.history()):
            if rec.get("version") == cur.name and rec.get("previous"):
                prev = rec["previous"]
                break
        if prev is None or not (self.bundles / prev).is_dir():
            raise DeployError(f"{self.root}: {cur.name} is the first installed version; there is "
                              f"no earlier version to roll back to (installed: {self.versions()})")
        self._point_current(prev)
        # A rollback record names the restored version and what it replaced, so a second
        # rollback goes further back through the install records.
        earlier = next((r.get("previous") for r in self.history()
                        if r.get("event") == "install" and r.get("version") == prev), None)
        append_line(self.records, {"event": "rollback", "version": prev, "from": cur.name,
                                   "previous": earlier, "time": time.time()})
        return self.bundles / prev
