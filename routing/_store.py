"""The compiled network on disk: one uncompressed zip of ``.npy`` members, each memory-mappable.

Why this shape: every serving process maps the same file read-only, so the arrays live once in
the page cache of a machine instead of once per process. A single file (not a directory) keeps
the replace atomic (write a temporary file beside it, fsync, ``os.replace``) and keeps working
with everything that watches the file's modification time. Each member is stored (never deflated)
and its local zip header is padded with an extra field so that the ``.npy`` data starts on a
64-byte boundary; since numpy pads ``.npy`` headers to 64 bytes too, every array's data is aligned
for numba. The file stays a valid ``.npz``: ``np.load`` reads it, ``unzip -l`` lists it.

``manifest.json`` (the last member) holds the format name and version, the build parameters, and
per array its dtype, shape, byte size and CRC-32. Loading checks names, dtypes, shapes and sizes
(cheap); :func:`verify` also checks the CRCs (reads every byte).
"""

from __future__ import annotations

import io
import json
import os
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from routing.errors import RoadNetworkError

ALIGN = 64
MANIFEST = "manifest.json"
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # zipfile's own layout of a local file header
_PAD_ID = 0xD935  # the extra-field id Android's zipalign uses for padding


def write(
    path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray], meta: dict[str, Any]
) -> int:
    """Write ``arrays`` and ``meta`` (plus each array's facts) atomically; returns the size."""
    target = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(target))
    manifest = dict(meta)
    manifest["arrays"] = {}
    fd, tmp = tempfile.mkstemp(prefix=".roads-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED) as zf:
            for name, value in arrays.items():
                array = np.ascontiguousarray(value)
                header = _npy_header(array)
                size = len(header) + array.nbytes
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(2020, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_STORED
                info.file_size = size
                # zipfile's own rule for adding a 20-byte zip64 extra to the local header
                zip64 = size * 1.05 > zipfile.ZIP64_LIMIT
                fixed = _LOCAL_HEADER.size + len(info.filename.encode()) + (20 if zip64 else 0)
                pad = (-(raw.tell() + fixed)) % ALIGN
                if 0 < pad < 4:  # an extra field needs 4 bytes of its own header
                    pad += ALIGN
                if pad:
                    info.extra = struct.pack("<HH", _PAD_ID, pad - 4) + b"\0" * (pad - 4)
                crc = 0
                with zf.open(info, "w", force_zip64=zip64) as member:
                    member.write(header)
                    crc = zlib.crc32(header, crc)
                    view = array.reshape(-1).view(np.uint8).data
                    for start in range(0, view.nbytes, 64 << 20):
                        chunk = view[start : start + (64 << 20)]
                        member.write(chunk)
                        crc = zlib.crc32(chunk, crc)
                manifest["arrays"][name] = {
                    "dtype": array.dtype.str,
                    "shape": list(array.shape),
                    "nbytes": int(array.nbytes),
                    "crc32": crc,
                }
            zf.writestr(MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return os.path.getsize(target)


def _npy_header(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, np.lib.format.header_data_from_array_1_0(array))
    return buf.getvalue()


def read_manifest(path: str) -> dict[str, Any] | None:
    """The manifest of a version-2 file, or ``None`` for a file without one (version 1)."""
    with zipfile.ZipFile(path) as zf:
        try:
            return dict(json.loads(zf.read(MANIFEST)))
        except KeyError:
            return None


def map_arrays(path: str, manifest: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Every array of the manifest as a read-only ``np.memmap`` of the file (no copy)."""
    out: dict[str, np.ndarray] = {}
    total = os.path.getsize(path)
    with open(path, "rb") as raw, zipfile.ZipFile(raw) as zf:
        for name, facts in manifest["arrays"].items():
            info = zf.getinfo(f"{name}.npy")
            if info.compress_type != zipfile.ZIP_STORED:
                raise RoadNetworkError(f"{path}: member {name} is compressed", field="path")
            raw.seek(info.header_offset)
            fields = _LOCAL_HEADER.unpack(raw.read(_LOCAL_HEADER.size))
            raw.seek(info.header_offset + _LOCAL_HEADER.size + fields[10] + fields[11])
            version = np.lib.format.read_magic(raw)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(raw)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(raw)
            offset = raw.tell()
            if (
                fortran
                or dtype.str != facts["dtype"]
                or list(shape) != list(facts["shape"])
                or offset + int(facts["nbytes"]) > total
            ):
                raise RoadNetworkError(
                    f"{path}: array {name} does not match its manifest (truncated or altered "
                    "file): import the roads again",
                    field="path",
                )
            if int(np.prod(shape)) == 0:
                out[name] = np.zeros(shape, dtype)
                out[name].flags.writeable = False
            else:
                out[name] = np.memmap(raw, dtype=dtype, mode="r", offset=offset, shape=shape)
    return out


def verify(path: str) -> None:
    """Check every member's CRC-32 (reads the whole file)."""
    with zipfile.ZipFile(path) as zf:
        bad = zf.testzip()
    if bad is not None:
        raise RoadNetworkError(f"{path}: member {bad} is corrupt: import the roads again")
