"""Files written so a crash or another user never sees them half-done: fsynced temp files renamed
into place, private (0600) where they hold secrets or code, temp files of interrupted runs cleaned."""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable
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


def replace_all(targets: Iterable[Path], write: Callable[[Path, Path], None]) -> None:
    """Write every target through an fsynced temp file (`write(tmp, target)`), then rename them all into place
    and fsync their folders; temp files an interrupted earlier run left in those folders are removed first."""
    targets = list(targets)
    folders = {target.parent for target in targets}
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        for target in targets:
            for leftover in folder.glob(f".{target.name}.*.tmp"):
                leftover.unlink(missing_ok=True)
    staged: list[tuple[Path, Path]] = []
    try:
        for target in targets:
            staged.append((temp_name(target), target))
            write(staged[-1][0], target)
            fsync(staged[-1][0])
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, target in staged:
        os.replace(tmp, target)
    for folder in folders:
        fsync(folder)
