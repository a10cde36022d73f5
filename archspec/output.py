"""Writing output files atomically: every command that writes a file (export, compile -o, diagram -o,
diff -o, fmt) writes a temporary file in the same folder, flushes it to disk and renames it into place.
A reader never sees half a file: a killed export leaves the old file or none, and parallel writers to one
path each replace it whole instead of truncating each other's."""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """A fresh temporary path beside `path` to write to; when the block ends without an exception the file
    is fsynced and renamed to `path`, else removed."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:64]}.", suffix=suffix + ".tmp", dir=path.parent or ".")
    os.close(fd)
    tmp = Path(tmp)
    try:
        os.chmod(tmp, _MODE)  # mkstemp makes it private; an output gets the usual permissions
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_atomic(path: str | Path, data: bytes | str) -> Path:
    """Write bytes (or UTF-8 text) to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """A fresh temporary folder beside `path`, for outputs made of several files (an ONNX model with its
    external data file): when the block ends, each file in it is renamed into `path`'s folder, the file
    named like `path` last, so the model never points at missing data."""
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name[:64]}.", suffix=".tmp", dir=path.parent or "."))
    try:
        yield tmp
        files = sorted(tmp.iterdir(), key=lambda f: f.name == path.name)
        for f in files:
            with open(f, "rb+") as fh:
                os.fsync(fh.fileno())
            os.chmod(f, _MODE)
            os.replace(f, path.parent / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
