"""The on-disk artifact cache: one file per compiled kernel, named by its cache key.

Default location `~/.cache/keir`, overridden by KEIR_CACHE_DIR. Writers write a temporary file in the same
folder and rename it into place, so a reader sees either nothing or a whole artifact, and several processes
compiling the same formula at once each publish a correct (identical) file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def cache_dir() -> Path:
    configured = os.environ.get("KEIR_CACHE_DIR")
    path = Path(configured) if configured else Path.home() / ".cache" / "keir"
    return path


def load(key: str, suffix: str = ".o") -> bytes | None:
    try:
        return (cache_dir() / f"{key}{suffix}").read_bytes()
    except FileNotFoundError:
        return None


def store(key: str, data: bytes, suffix: str = ".o") -> None:
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, folder / f"{key}{suffix}")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
