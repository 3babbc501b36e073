"""Files written so a crash or another user never sees them half-done: fsynced temp files renamed
into place, private (0600) where they hold secrets or code; folders of tables swapped as a whole
(a new generation, then one rename of the link to it); leftovers of interrupted runs cleaned."""
from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path


def fsync(path: Path) -> None:
    """Flush a file's data (or a folder's entries) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(target: Path) -> Path:
    """The temp file a write of `target` goes through (hidden, named after this process)."""
    return target.with_name(f".{target.name}.{os.getpid()}.tmp")


def write_private(target: Path, data: bytes) -> None:
    """Write a file readable by its owner only (0600), fsynced, via a temp file and a rename."""
    tmp = temp_name(target)
    tmp.unlink(missing_ok=True)
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, target)
    target.chmod(0o600)


def generations(link: Path) -> list[Path]:
    """Every generation folder of `link` (`.<name>.<stamp>`), current or not, oldest first."""
    return sorted((p for p in link.parent.glob(f".{link.name}.*") if p.is_dir() and not p.is_symlink()),
                  key=lambda p: p.name)


def swap_folder(link: Path, write: Callable[[Path], None]) -> Path:
    """Build the next generation of the folder `link` points to, then point `link` at it with one rename.

    The new generation starts as hard links of the current one's files; `write(folder)` writes
    (or replaces) files in it. Every file is fsynced before the switch, so a reader sees the whole
    old set or the whole new one. The previous generation is kept for readers still in it; older
    ones, and the half-built ones of interrupted runs, are removed. A plain folder at `link` (an
    earlier layout, or a copy that followed the link) becomes the current generation first.
    """
    parent = link.parent
    parent.mkdir(parents=True, exist_ok=True)
    current = link.resolve() if link.is_symlink() else None
    if link.is_dir() and not link.is_symlink():
        current = parent / f".{link.name}.{time.time_ns():020d}"
        os.rename(link, current)
    for old in generations(link):
        if old != current:
            shutil.rmtree(old)
    for pointer in parent.glob(f".{link.name}.*.link"):  # an interrupted run's unused link
        pointer.unlink()
    new = parent / f".{link.name}.{time.time_ns():020d}"
    new.mkdir()
    try:
        for existing in current.iterdir() if current is not None else []:
            os.link(existing, new / existing.name)
        write(new)
        for written in new.iterdir():
            fsync(written)
        fsync(new)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    pointer = parent / f".{link.name}.{os.getpid()}.link"
    pointer.symlink_to(new.name)
    os.replace(pointer, link)
    fsync(parent)
    return new


def remove_folder(link: Path) -> None:
    """Remove `link` and every generation of it (`swap_folder`)."""
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.is_dir():
        shutil.rmtree(link)
    for old in generations(link):
        shutil.rmtree(old)
