"""Files on disk: written atomically, read as untrusted input, confined to a root without symbolic links.

Everything the app opens, serves, lists or deletes under the runs root or the feature-visualisation cache is
first checked by `confined` (or `is_confined`): the path must lie lexically under the root and no component
below the root may be a symbolic link (the root itself may be one: an operator's choice). The last component
is then opened with O_NOFOLLOW, so a link swapped in after the check is refused too.

Writers replace a file in one rename (temp file in the same folder, so the rename is atomic), so a reader
sees the old content or the new one, never a torn one. Readers of JSON treat the file as untrusted: anything
unreadable, unparsable or not an object reads as None.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

MAX_JSON_BYTES = 8 << 20  # a status, config or job file is a few kB; a bigger one is not ours


class ConfinementError(ValueError):
    """A path that leaves its root or passes through a symbolic link; the message says which part."""


# ---------------------------------------------------------------------------
# Confinement


def confined(root: Path, path: Path, what: str = "path") -> Path:
    """`path` if it lies under `root` (lexically, no '..') with no symbolic link below `root`; else
    ConfinementError naming the offending part relative to the root (never an absolute server path).

    Parts that do not exist yet are fine (a folder about to be made); `path == root` is refused."""
    root, path = Path(root), Path(path)
    try:
        rel = path.relative_to(root)
    except ValueError:
        rel = None
    if rel is None or not rel.parts or any(p in ("..", ".", "") for p in rel.parts):
        raise ConfinementError(f"{what} {path.name!r} is outside its folder")
    here = root
    for part in rel.parts:
        here = here / part
        try:
            st = os.lstat(here)
        except FileNotFoundError:
            break  # the rest does not exist yet
        except OSError as e:
            raise ConfinementError(f"{what} {rel.as_posix()!r} cannot be checked ({e.strerror})") from None
        if stat.S_ISLNK(st.st_mode):
            shown = here.relative_to(root).as_posix()
            raise ConfinementError(f"{what} {shown!r} is a symbolic link; refusing to use it")
    return path


def is_confined(root: Path, path: Path) -> bool:
    try:
        confined(root, path)
    except ConfinementError:
        return False
    return True


def is_plain_dir(path: Path) -> bool:
    """A directory that is not a symbolic link (lstat: never follows)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def is_plain_file(path: Path) -> bool:
    """A regular file that is not a symbolic link (Path.is_file follows links)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def plain_children(folder: Path) -> list[Path]:
    """The folder's subdirectories that are not symbolic links; [] for a missing or unreadable folder."""
    try:
        with os.scandir(folder) as it:
            return sorted(Path(e.path) for e in it if e.is_dir(follow_symlinks=False))
    except OSError:
        return []


# ---------------------------------------------------------------------------
# Reading


def read_bytes(path: Path, limit: int | None = None) -> bytes:
    """The bytes of a regular file, refusing a symbolic link as the last part (O_NOFOLLOW) and anything that
    is not a regular file (a FIFO or device would block or never end); OSError otherwise. `limit`: read at most
    this many bytes plus one, so a caller can tell that a file is too big without reading all of it."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IsADirectoryError(21, "not a regular file", str(path))
        return f.read() if limit is None else f.read(limit + 1)


def read_text(path: Path, limit: int | None = None) -> str:
    return read_bytes(path, limit).decode("utf-8", errors="replace")


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in a file, or None for anything else: missing, a link, not a regular file, too big,
    torn, not UTF-8, not JSON, or JSON that is not an object."""
    try:
        raw = read_bytes(path, MAX_JSON_BYTES)
    except OSError:
        return None
    if len(raw) > MAX_JSON_BYTES:
        return None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


# ---------------------------------------------------------------------------
# Writing


def atomic_write_bytes(path: str | os.PathLike, data: bytes, sync: bool = True) -> None:
    """Write a file so readers see the old content or the new one, never a torn one.

    The temp file is a hidden sibling (`.NAME.*.tmp`, which the trainer's start-up clean-up finds), synced
    before the rename unless sync=False (files rewritten every second, where the process' liveness, not
    the file's durability, tells what happened after a crash). os.replace replaces a link, never follows it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: Path, data: dict[str, Any], sync: bool = True) -> None:
    atomic_write_bytes(path, json.dumps(data, indent=1).encode(), sync=sync)


def append_text(path: Path, text: str) -> None:
    """Append in one write (a crash tears at most the last line); a symbolic link is refused, never followed."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(text)
        f.flush()
