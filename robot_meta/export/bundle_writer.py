"""The one bundle write transaction, torch-free: every bundle on disk is written here.

    with BundleWriter(out_dir, overwrite=False) as w:
        export_onnx(module, io, w.path("policy.onnx"), meta)   # or w.add_file(name, data=bytes)
        w.add_file("policy.onnx", role="policy", inputs=..., outputs=..., precision=...)
        w.commit(manifest)                                     # manifest.files = what was added

Files go to a temporary sibling directory; :meth:`BundleWriter.commit` hashes each into the
manifest, writes ``manifest.json``, refuses any file the manifest does not list (an ONNX
external-data file, say), verifies the result as a robot would (:func:`~robot_meta.runtime.
bundle.load_bundle`: format, hashes, every graph opens in onnxruntime with its role's names),
and only then renames it into place. A failure anywhere leaves ``out_dir`` as it was.

Used by the exporter (:func:`robot_meta.export.exporter.export_bundle`) and by on-robot
gradient adaptation (:class:`robot_meta.runtime.adapters.gradient_adapter.GradientAdapter`).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

from robot_meta.errors import UserError
from robot_meta.export.manifest import MANIFEST, SIGNATURE, FileEntry, Manifest, sha256_file
from robot_meta.runtime.atomic import fsync_dir


class ExportError(UserError):
    """The export failed a check (ONNX checker or torch/onnxruntime parity); nothing was written."""


class BundleWriter:
    """Writes one bundle directory atomically (see the module docstring)."""

    def __init__(self, out_dir: str | Path, *, overwrite: bool = False):
        self.out = Path(out_dir)
        if self.out.exists() and not overwrite:
            raise ExportError(f"{self.out} exists; choose another -o directory or pass --force")
        self.files: dict[str, FileEntry] = {}
        self.tmp: Path | None = None
        self.manifest: Manifest | None = None

    def __enter__(self) -> BundleWriter:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.", dir=self.out.parent))
        self.tmp.chmod(0o755)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)  # gone after commit; after a failure, all of it

    def path(self, name: str) -> Path:
        """Where a producer writes file ``name`` itself (e.g. ``torch.onnx.export``)."""
        if self.tmp is None:
            raise RuntimeError("use BundleWriter as a context manager")
        if Path(name).name != name or name in (MANIFEST, SIGNATURE):
            raise ExportError(f"{name!r}: a bundle file is a plain name other than {MANIFEST} "
                              f"and {SIGNATURE}")
        return self.tmp / name

    def add_file(self, name: str, data: bytes | None = None, *, role: str = "",
                 inputs: dict[str, list[int | str]] | None = None,
                 outputs: dict[str, list[int | str]] | None = None,
                 precision: str = "float32") -> FileEntry:
        """List file ``name`` in the manifest with its SHA-256: ``data`` is written first, or
        the file must already be at :meth:`path`. Returns its entry."""
        p = self.path(name)
        if data is not None:
            p.write_bytes(data)
        if not p.is_file():
            raise ExportError(f"{name}: nothing was written for this bundle file")
        entry = FileEntry(sha256=sha256_file(p), role=role, inputs=dict(inputs or {}),
                          outputs=dict(outputs or {}), precision=precision)
        self.files[name] = entry
        return entry

    def commit(self, manifest: Manifest, *, manifest_bytes: bytes | None = None,
               signature: bytes | None = None) -> Manifest:
        """Write ``manifest`` with the added files as its ``files``, verify the bundle and move
        it into place (replacing an older one). Returns the manifest written.

        A copy of a bundle passes its ``manifest.json`` bytes (they must list exactly the added
        files, with their hashes) and its ``manifest.sig``, so that a signature still holds."""
        from robot_meta.runtime.bundle import load_bundle

        if self.tmp is None:
            raise RuntimeError("use BundleWriter as a context manager, and commit once")
        tmp = self.tmp
        manifest = dataclasses.replace(manifest, files=dict(self.files))
        if manifest_bytes is None:
            (tmp / MANIFEST).write_text(manifest.to_json())
        else:
            (tmp / MANIFEST).write_bytes(manifest_bytes)
            if Manifest.read(tmp).files != self.files:
                raise ExportError(f"{self.out}: the manifest does not list exactly the files "
                                  "written, with their hashes")
        if signature is not None:
            (tmp / SIGNATURE).write_bytes(signature)
        for p in tmp.iterdir():  # no stray external-data files may hide in a bundle
            if p.name not in (MANIFEST, SIGNATURE) and p.name not in self.files:
                raise ExportError(f"unexpected file {p.name} in the export (external data?)")
        load_bundle(tmp)  # as the robot will: format, hashes, every graph opens with its names
        for p in tmp.iterdir():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
        out = self.out
        if out.exists():
            old = out.with_name(out.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
        fsync_dir(out.parent)
        self.tmp = None
        self.manifest = manifest
        return manifest


def copy_bundle(src: str | Path, dest: str | Path, *, overwrite: bool = True) -> Manifest:
    """Copy a verified bundle to ``dest`` through a :class:`BundleWriter` (replacing an older
    one atomically unless ``overwrite`` is False): the listed files, ``manifest.json`` byte for
    byte and its signature if any, verified on both sides."""
    from robot_meta.runtime.bundle import load_bundle

    src = Path(src)
    manifest = load_bundle(src).manifest  # hashes checked before anything is copied
    sig = src / SIGNATURE
    with BundleWriter(dest, overwrite=overwrite) as w:
        for name, e in manifest.files.items():
            w.add_file(name, (src / name).read_bytes(), role=e.role, inputs=e.inputs,
                       outputs=e.outputs, precision=e.precision)
        return w.commit(manifest, manifest_bytes=(src / MANIFEST).read_bytes(),
                        signature=sig.read_bytes() if sig.is_file() else None)
