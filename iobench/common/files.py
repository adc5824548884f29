"""Files written safely: whole or not at all, and never through a symbolic link.

A run folder may be shared (``/tmp``, a group-writable results folder), and
the runner often runs as root for perf, cgroups and tracefs: a symbolic link
planted under a name it writes (``REPORT.md -> /etc/passwd``) must not make
it overwrite another file. So every file is written to a fresh temporary
name in the same folder, opened with ``O_EXCL | O_NOFOLLOW`` relative to the
folder's descriptor, synced, and renamed over the name: the rename replaces
whatever is there (a link included) and never follows it, and a reader sees
the old file or the new one, never half of one. A folder the project makes
(``plots/``) is refused when it is a link.
"""

from __future__ import annotations

import io
import os
import secrets
import stat
from pathlib import Path
from typing import Any

from iobench.common.errors import UsageError

# Results and reports are for sharing; keys and private files pass their own mode.
FILE_MODE = 0o644
PRIVATE_MODE = 0o600
# Temporary names are random; a clash with a file already there is tried again.
TEMP_NAME_TRIES = 16


class UnsafePathError(UsageError):
    """A name the project writes is a symbolic link, or not what it should be."""


def _open_dir(path: Path, *, follow: bool) -> int:
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        return os.open(path, flags)
    except OSError as exc:
        if not follow and os.path.islink(path):
            raise UnsafePathError(f"{path} is a symbolic link; refusing to write through it"
                                  ) from None
        raise UnsafePathError(f"cannot write into {path}: {exc.strerror}") from None


def make_dir(path: Path, mode: int = 0o755) -> Path:
    """``path`` as a folder (its parents made as needed); UnsafePathError if it is a link."""
    if path.is_symlink():
        raise UnsafePathError(f"{path} is a symbolic link; refusing to write through it")
    try:
        path.mkdir(mode=mode, parents=True, exist_ok=True)
    except OSError as exc:
        raise UnsafePathError(f"cannot create {path}: {exc.strerror}") from None
    os.close(_open_dir(path, follow=False))  # a link raced in after the check is refused too
    return path


def atomic_write(path: Path, data: str | bytes, mode: int = FILE_MODE,
                 follow_dir: bool = True) -> Path:
    """Replace ``path`` with ``data``: atomically, durably, and never through a link.

    ``follow_dir=False`` also refuses a folder that is itself a link (one the
    project made, such as ``plots/``); the run folder the user names may be one.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    dir_fd = _open_dir(path.parent, follow=follow_dir)
    try:
        temporary, fd = _create_temporary(dir_fd, path.name)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(payload)
                out.flush()
                os.fchmod(out.fileno(), mode)
                os.fsync(out.fileno())
            os.replace(temporary, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            try:
                os.unlink(temporary, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
            raise
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)
    return path


def _create_temporary(dir_fd: int, name: str) -> tuple[str, int]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(TEMP_NAME_TRIES):
        temporary = f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            return temporary, os.open(temporary, flags, PRIVATE_MODE, dir_fd=dir_fd)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name for {name}")


def save_figure(fig: Any, path: Path, follow_dir: bool = True, **options: Any) -> Path:
    """A matplotlib figure written with :func:`atomic_write` (its format from the suffix)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=options.pop("format", path.suffix.lstrip(".").lower()),
                **options)
    return atomic_write(path, buffer.getvalue(), follow_dir=follow_dir)


def open_regular_nofollow(path: Path, flags: int, mode: int = FILE_MODE) -> int:
    """A descriptor of the regular file ``path`` (made if ``O_CREAT``), never through a link."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode)
    except OSError as exc:
        if os.path.islink(path):
            raise UnsafePathError(f"{path} is a symbolic link; refusing to follow it") from None
        raise UnsafePathError(f"cannot open {path}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafePathError(f"{path} is not a regular file")
    return fd
