"""Writing the files of a run: atomically (a temporary name, then a rename), with the mode an
ordinary file gets; the names a run and its tests may have."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

# \Z, not $: "$" also matches before a final newline, and a name with one would pass.
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
# A test id names its Parquet parts and rank logs: one path component ('+' joins a Kubernetes
# test's nodes), no "..", room left for ".rank<N>.log" under the file system's 255-byte limit.
TEST_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,239}\Z")
# The most run.json (and the other JSON documents of a run) may hold: far above any real one
# (a 1,000-node all-pairs plan lists 500,000 test ids in about 20 MB), far below memory.
MAX_JSON_BYTES = 64 << 20

# mkstemp makes 0600 files; results are meant to be read by the team, so they get
# the mode an ordinary file would (0666 less the umask).
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK


def _temp_beside(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, FILE_MODE)
    return fd, tmp


def _discard(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass


def atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = _temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _discard(tmp)
        raise


def atomic_write_parquet(path: Path, frame: pd.DataFrame | pa.Table) -> None:
    fd, tmp = _temp_beside(path)
    os.close(fd)
    try:
        if isinstance(frame, pa.Table):
            pq.write_table(frame, tmp)
        else:
            frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except OSError as exc:
        _discard(tmp)
        if not exc.filename:  # pyarrow's errors name no file
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
    except BaseException:
        _discard(tmp)
        raise


def rewrite_in_place(path: Path, data: bytes) -> None:
    """Overwrite an existing small file through its own blocks: the last resort when a
    full disk has no room for the temporary copy an atomic write needs."""
    with open(path, "r+b") as f:
        f.truncate(0)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
