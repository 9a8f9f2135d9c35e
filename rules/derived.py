"""A cache of arrays derived from shipped data, so a process need not derive them again.

Every replay's feed reader, every ``crisismon score`` and every daemon start loads the
sentiment model: it unzips 3.4 MB and widens 6.3 million float16 weights to the float32
table the scorer gathers from (~0.08 s). The table is the same every time for the same
model file, so it is kept, once made, in the user's cache folder (``$XDG_CACHE_HOME`` or
``~/.cache``, then ``crisismon/``) as plain ``.npy`` arrays one after the other (an
``.npz`` is a zip whose every read checks a CRC of all 25 MB: ~0.02 s), and read back in
~0.01 s; likewise
``rules.textnorm``'s per-character tables (~0.035 s to make, ~3 ms to read).

Safe by construction: an entry's name is a hash of everything it was derived from (the
model file's bytes, the derivation's version), so a changed input finds no entry and
derives afresh; an entry is written to a temporary file and renamed into place (a reader
never sees half of one); and any failure to read or write one (no home, a read-only or
full disk, a damaged file) only means deriving as if there were no cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np


def cache_dir() -> Path | None:
    """The folder for derived arrays; None if there is no home to put it in."""
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError:  # no home directory known
            return None
    return Path(base) / "crisismon"


def key(*parts: bytes | str) -> str:
    """The name of an entry derived from ``parts`` (its inputs, and the version of the
    derivation): a hash of them, each length-prefixed so that no two lists collide."""
    h = hashlib.sha256()  # (the CPU's SHA instructions: ~1 ms for the model, ~5x blake2b)
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()[:40]


def load(name: str, entry: str) -> dict[str, np.ndarray] | None:
    """The arrays stored as ``name``-``entry``, or None (none stored, or unreadable)."""
    folder = cache_dir()
    if folder is None:
        return None
    try:
        with open(folder / f"{name}-{entry}{SUFFIX}", "rb") as fh:
            names = np.load(fh, allow_pickle=False).tolist()
            return {str(k): np.load(fh, allow_pickle=False) for k in names}
    except Exception:  # missing, damaged, unreadable: derive afresh
        return None


SUFFIX = ".arrays"
"""An entry's file: its arrays' names (an array of strings), then each array, as ``.npy``
(``numpy.save``) one after the other."""
KEEP = 3
"""Entries kept per name, the newest: a retrained model or an upgrade leaves the old
entries unused (25 MB each for the sentiment model)."""


def store(name: str, entry: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Keep ``arrays`` as ``name``-``entry``, and only the ``KEEP`` newest entries of
    ``name`` (best effort: nothing happens if it fails)."""
    folder = cache_dir()
    if folder is None:
        return
    tmp: str | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=SUFFIX, dir=folder)
        with os.fdopen(fd, "wb") as fh:
            names = sorted(arrays)
            np.save(fh, np.array(names), allow_pickle=False)
            for k in names:
                np.save(fh, np.asarray(arrays[k]), allow_pickle=False)
        made = folder / f"{name}-{entry}{SUFFIX}"
        os.replace(tmp, made)
        tmp = None
        # The others, oldest first (this one is the newest, whatever the clock's grain).
        others = sorted((p for p in folder.glob(f"{name}-*{SUFFIX}") if p != made), key=_age)
        for old in others[:max(0, len(others) - (KEEP - 1))]:
            with contextlib.suppress(OSError):
                old.unlink()
    except Exception:
        pass  # a cache that cannot be written is no cache
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _age(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:  # gone meanwhile (another process trimmed it)
        return 0
