"""A fingerprint of the data a run trains on, to tell on a resume that the data changed.

A resume continues with the checkpoint's normaliser, split and best value: on other data, or
on the same file rewritten, those no longer mean what they did (a val/mse_v of 1.07 became 8.9
on a rewritten CSV with 5x the amplitude). A file is fingerprinted by the SHA-256 of its bytes
(with its size and path, to name it); the simulator by its settings, which determine its data.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any, Optional

from ..config import DataConfig
from ..errors import UserError


def fingerprint(cfg: DataConfig) -> Optional[dict[str, Any]]:
    """{source, path, size, sha256} of a data file, {source, synthetic, sample_rate_hz} of the simulator;
    None for a file that is not there (its reader says so)."""
    if cfg.source == "synthetic":
        return {"source": "synthetic", "synthetic": dataclasses.asdict(cfg.synthetic),
                "sample_rate_hz": cfg.sample_rate_hz}
    path = Path(cfg.path or "").resolve()
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"source": "file", "path": str(path), "size": path.stat().st_size, "sha256": digest.hexdigest()}


def check_same_data(saved: Optional[dict[str, Any]], cfg: DataConfig, what: str, instead: str) -> None:
    """Refuse when the data `cfg` names now differs from the data `saved` fingerprinted.

    `what` names what was written on the old data (a checkpoint, an experiment); `instead` says how
    to proceed. A `saved` of None (written before fingerprints were recorded) is not checked.
    """
    now = fingerprint(cfg)
    if not saved or now is None or _same(saved, now):
        return
    if now["source"] == "file":
        was = (f"it had {saved.get('size')} bytes, sha256 {str(saved.get('sha256'))[:12]}"
               if saved.get("source") == "file" else "it was the simulator's data")
        raise UserError(f"the data changed since {what} was written: '{now['path']}' now has {now['size']} bytes, "
                        f"sha256 {now['sha256'][:12]} ({was}); restore the original file, or {instead}")
    raise UserError(f"the data changed since {what} was written: the simulator's settings are now {now['synthetic']} "
                    f"(they were {saved.get('synthetic', saved.get('path'))}); restore them, or {instead}")


def _same(saved: dict[str, Any], now: dict[str, Any]) -> bool:
    """Same content: a moved file with the same bytes is the same data."""
    if saved.get("source") != now["source"]:
        return False
    if now["source"] == "file":
        return saved.get("sha256") == now["sha256"] and saved.get("size") == now["size"]
    return saved.get("synthetic") == now["synthetic"] and saved.get("sample_rate_hz") == now["sample_rate_hz"]
