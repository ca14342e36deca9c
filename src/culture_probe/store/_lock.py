"""The run folder's lock: ``RUN_DIR/.lock``, held (``flock``) by the one process writing to the run.

The lock file is opened without following a symbolic link (``O_NOFOLLOW``) and must be a regular
file: a received run folder whose ``.lock`` points elsewhere could otherwise make the tool write
its PID into, and empty, any file the user can write.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from culture_probe.errors import InputError, RunDirectoryLocked
from culture_probe.store._files import LOCK, disk_errors, refuse_link_or_special

#: run directories this process holds the lock of, with how many holders each (re-entrant)
_HELD_LOCKS: dict[Path, int] = {}


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``RUN_DIR/.lock`` while writing to a run: a second process is refused with our PID.

    The lock is ``flock``: the kernel drops it when the process ends, however it ends, so a
    ``kill -9`` leaves no stale lock. It is re-entrant within one process (the pipeline holds it
    across score, analyse and report, each of which takes it again). A folder that holds nothing
    but the lock when it is released, because the run failed before writing anything, is left as
    it was found.

    Raises:
        RunDirectoryLocked: another process holds the lock.
        InputError: ``.lock`` (or the folder) is a symbolic link or not a regular file.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp()) / "run"
        >>> with run_lock(folder):
        ...     (folder / LOCK).read_text() == str(os.getpid())
        True
        >>> folder.exists()  # nothing was written: the folder is gone again
        False
    """
    key = Path(run_dir).resolve()
    if key in _HELD_LOCKS:
        _HELD_LOCKS[key] += 1
        try:
            yield
        finally:
            _HELD_LOCKS[key] -= 1
        return
    created = not key.exists()
    handle = _acquire(Path(run_dir))
    _HELD_LOCKS[key] = 1
    try:
        yield
    finally:
        del _HELD_LOCKS[key]
        _release(handle, Path(run_dir), created)


def _acquire(run_dir: Path) -> int:
    path = run_dir / LOCK
    refuse_link_or_special(run_dir, folder=True)
    with disk_errors(run_dir, "creating"):
        run_dir.mkdir(parents=True, exist_ok=True)
    while True:
        handle = _open_lock_file(path)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(handle, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(handle)
            raise RunDirectoryLocked(
                f"{run_dir} is in use by another process (PID {holder}), which holds {path}; "
                "wait for it to finish, or stop it, then run the same command again"
            ) from None
        # The holder before us may have removed the file after we opened it: lock the new one.
        if _same_file(handle, path):
            break
        os.close(handle)
    pid = str(os.getpid()).encode()
    os.ftruncate(handle, 0)
    os.pwrite(handle, pid, 0)
    return handle


def _open_lock_file(path: Path) -> int:
    """Open (or create) the lock file: never through a link, never anything but a regular file.

    ``O_NONBLOCK`` keeps a FIFO from stalling the open; it is then refused as not a regular file.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        handle = os.open(path, flags, 0o644)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENXIO, errno.EMLINK):
            refuse_link_or_special(path)
        with disk_errors(path, "locking"):
            raise
    if not stat.S_ISREG(os.fstat(handle).st_mode):
        os.close(handle)
        refuse_link_or_special(path)
        raise InputError("is not a regular file", path=path, hint="remove it and run again")
    return handle


def _same_file(handle: int, path: Path) -> bool:
    try:
        on_disk = os.lstat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(handle)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _release(handle: int, run_dir: Path, created: bool) -> None:
    try:
        if _holds_only_the_lock(run_dir):
            # Still locked while we remove it, so no other process can be using this file.
            (run_dir / LOCK).unlink(missing_ok=True)
            if created:
                run_dir.rmdir()
        else:
            os.ftruncate(handle, 0)
    except OSError:
        pass  # leaving an empty lock file behind is harmless; the run's own error matters more
    finally:
        os.close(handle)


def _holds_only_the_lock(run_dir: Path) -> bool:
    return [entry.name for entry in run_dir.iterdir()] == [LOCK]
