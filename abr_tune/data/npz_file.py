"""Reading a user's .npz, each member's header checked before any array is allocated.

numpy allocates the array a member's header describes before reading its bytes, so a header that
claims a huge shape costs that much memory (or a MemoryError) before the missing data is noticed.
The header (numpy.lib.format) is read first and refused when its array needs more bytes than the
member holds, or than deflate could have compressed into the member's stored size.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npy_format

from ..config import SEQUENCE_LENGTH
from ..errors import UserError

DEFLATE_MAX_RATIO = 1032  # deflate's largest expansion: 258-byte matches coded in 2 bits
_DAMAGED = "the file is damaged, re-save it with numpy.savez"


def read_npz(path: Path) -> dict[str, Any]:
    """Every member of the archive; needs signals, static and patient_id."""
    if not zipfile.is_zipfile(path):
        raise UserError(f"cannot read '{path}': not a valid .npz archive; write it with numpy.savez")
    check_headers(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            raw = {key: archive[key] for key in archive.files}
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise UserError(
                f"'{path}' stores Python objects; save patient_id as integers or fixed-width strings "
                "(np.asarray(ids, dtype=str)) and every other array as numbers"
            ) from None
        raise UserError(f"cannot read '{path}' ({err}); re-save it with numpy.savez") from None
    except (OSError, EOFError, MemoryError, zipfile.BadZipFile, zlib.error) as err:
        raise UserError(f"cannot read '{path}' ({type(err).__name__}: {err}); {_DAMAGED}") from None
    for key in ("signals", "static", "patient_id"):
        if key not in raw:
            raise UserError(
                f"'{path}' has no '{key}' array (found: {', '.join(raw) or 'none'}); an .npz needs "
                f"signals [N,{SEQUENCE_LENGTH}] in µV, static [N,4] and patient_id [N]"
            )
    return raw


def check_headers(path: Path) -> None:
    """Refuse a member whose header claims an array larger than the bytes it can hold."""
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.filename.endswith(".npy"):
                    _check_member(archive, info, path)
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise UserError(f"cannot read '{path}' ({type(err).__name__}: {err}); {_DAMAGED}") from None


def _check_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> None:
    name = info.filename[:-4]
    with archive.open(info) as member:
        try:
            version = npy_format.read_magic(member)
            read = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
            shape, _, dtype = read(member)
        except ValueError as err:
            raise UserError(f"'{path}': the header of '{name}' is not a numpy header ({err}); {_DAMAGED}") from None
        header_bytes = member.tell()
    if dtype.hasobject:
        return  # np.load refuses it with its own message (allow_pickle=False)
    needed = int(np.prod(shape, dtype=object)) * dtype.itemsize
    holds = info.file_size - header_bytes
    if info.compress_type == zipfile.ZIP_DEFLATED:
        holds = min(holds, info.compress_size * DEFLATE_MAX_RATIO)
    elif info.compress_type == zipfile.ZIP_STORED:
        holds = min(holds, info.compress_size - header_bytes)
    if needed > holds:
        raise UserError(
            f"'{path}': '{name}' claims an array of shape {tuple(shape)} ({dtype}, {_size(needed)}) but the file holds "
            f"at most {_size(max(holds, 0))} of it; {_DAMAGED}"
        )


def _size(n: int) -> str:
    value, unit = float(n), "bytes"
    for larger in ("KB", "MB", "GB", "TB", "PB", "EB"):
        if value < 1000:
            break
        value, unit = value / 1000, larger
    return f"{value:.3g} {unit}"
