"""Run logging: metrics.jsonl (one JSON object per iteration) and TensorBoard scalars."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


class RunLogger:
    """Appends each iteration's scalars to ``metrics.jsonl`` and writes them to TensorBoard
    under ``tb/`` (TensorBoard is optional: without it only the JSONL is written)."""

    def __init__(self, run_dir: Path, tensorboard: bool = True):
        self.path = run_dir / "metrics.jsonl"
        self.file = open(self.path, "a")  # noqa: SIM115 -- kept open for the whole run
        self.tb: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run_dir / "tb"))
            except ImportError:
                self.tb = None

    def log(self, step: int, record: dict[str, Any]) -> None:
        """Write one record; numeric entries also go to TensorBoard at x = env steps."""
        clean = {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in record.items()}
        self.file.write(json.dumps(clean) + "\n")
        self.file.flush()
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, int | float) and not isinstance(v, bool) and k not in ("steps", "iteration"):
                    self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()
