"""Which reader a recording file needs, recognised from its extension and its first bytes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import UserError
from .arf import read_arf
from .biosig_csv import MAGIC as BIOSIG_CSV_MAGIC
from .biosig_csv import read_biosig_csv
from .epl import MAGIC as EPL_MAGIC
from .epl import read_epl
from .recording import Record

SUPPORTED = "Tucker-Davis BioSigRZ .arf, BioSigRZ CSV export (.csv), EPL ABR files (as ncrar-abr reads them)"


def reader_for(path: Path) -> tuple[str, Callable[[Path], list[Record]]]:
    """(format name, reader) for `path`: .arf by extension, the CSV export and EPL by their first bytes."""
    if path.suffix.lower() == ".arf":
        return "BioSigRZ .arf", read_arf
    try:
        with open(path, "rb") as f:
            start = f.read(64).decode("latin-1")
    except OSError as err:
        raise UserError(f"cannot read '{path}' ({err.strerror or err})") from None
    if start.lstrip("\ufeff").startswith(BIOSIG_CSV_MAGIC):
        return "BioSigRZ CSV export", read_biosig_csv
    if start.startswith(EPL_MAGIC):
        return "EPL", read_epl
    raise UserError(f"'{path}' is in no format abr-tune reads (supported: {SUPPORTED}); "
                    "abr-tune's own .npz/CSV training files need no conversion (data.source: file)")


def read_recordings(path: Path) -> tuple[str, list[Record]]:
    """(format name, every record of `path`)."""
    name, reader = reader_for(path)
    return name, reader(path)
