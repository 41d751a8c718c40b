"""The on-disk artifact cache: one file per compiled kernel, named by its cache key.

Default location `~/.cache/keir`, overridden by KEIR_CACHE_DIR. Writers write a temporary file in the same
folder and rename it into place, so a reader sees either nothing or a whole artifact, and several processes
compiling the same formula at once each publish a correct (identical) file.

Each file is a header line (a format tag, then the SHA-256 of the payload in hex, so that a PTX artifact
stays text) followed by the payload. A file whose tag or checksum does not match -- truncated by a full disk
or a crash, damaged on disk, written in another format -- is reported with a `CacheWarning` and treated as
missing, so the kernel is compiled again and the file replaced: loading damaged object code could crash the
process. The checksum is verified when an artifact is read from disk, once per kernel and process, never on
the per-call path.

A cache folder that cannot be written (read-only, full, a file in the way) does not stop anything: kernels
are compiled in memory, and one `CacheWarning` per folder says that they are not kept across processes.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import warnings
from pathlib import Path

# Changing the layout of a file changes this tag, so files of another layout are recompiled, not misread.
_TAG = b"keir-artifact-1 sha256="
_HEADER_SIZE = len(_TAG) + 2 * hashlib.sha256().digest_size + 1  # the tag, the hex digest, a newline

_unwritable: set[Path] = set()  # folders already warned about, so the warning comes once per folder
_unwritable_lock = threading.Lock()


class CacheWarning(UserWarning):
    """The artifact cache could not be used as such; keir carried on (recompiled, or compiled in memory)."""


def cache_dir() -> Path:
    configured = os.environ.get("KEIR_CACHE_DIR")
    path = Path(configured) if configured else Path.home() / ".cache" / "keir"
    return path


def load(key: str, suffix: str = ".o") -> bytes | None:
    """The payload stored under `key`, or None when there is none or the file is damaged (then warned about,
    and removed so that the recompiled artifact replaces it)."""
    path = cache_dir() / f"{key}{suffix}"
    try:
        data = path.read_bytes()
    except OSError:  # missing, or a folder we may not read: either way, compile
        return None
    payload = _verified_payload(data)
    if payload is None:
        warnings.warn(f"keir: the cached artifact {path} is damaged (truncated, or its checksum does not match); "
                      "it is not loaded, the kernel is compiled again", CacheWarning, stacklevel=2)
        _remove(path)
    return payload


def store(key: str, data: bytes, suffix: str = ".o") -> None:
    """Publish `data` under `key`. Failure to write (read-only or full disk) warns once per folder and
    otherwise does nothing: the caller keeps its in-memory copy."""
    folder = cache_dir()
    try:
        _write_atomically(folder, f"{key}{suffix}", _header(data) + data)
    except OSError as error:
        _warn_unwritable(folder, error)


def _header(payload: bytes) -> bytes:
    return _TAG + hashlib.sha256(payload).hexdigest().encode() + b"\n"


def _verified_payload(data: bytes) -> bytes | None:
    """The payload of a whole, undamaged file; None for anything else."""
    payload = data[_HEADER_SIZE:]
    return payload if data[:_HEADER_SIZE] == _header(payload) else None


def _write_atomically(folder: Path, name: str, content: bytes) -> None:
    """Write `content` to a temporary file in `folder`, then rename it to `name`: readers never see a part."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        _write_file(fd, content)
        os.replace(tmp, folder / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_file(fd: int, content: bytes) -> None:
    """Write all of `content` to `fd` and close it (a separate function so tests can make the disk full)."""
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)


def _warn_unwritable(folder: Path, error: OSError) -> None:
    with _unwritable_lock:
        if folder in _unwritable:
            return
        _unwritable.add(folder)
    warnings.warn(f"keir: cannot write to the artifact cache {folder} ({error.strerror or error}); kernels are "
                  "compiled in memory and not kept for other processes (set KEIR_CACHE_DIR to a writable folder)",
                  CacheWarning, stacklevel=3)


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:  # a read-only cache: the damaged file stays, and is detected again next time
        pass
