"""What an input path is, checked before anything opens it (standard library only).

Imported by the CLI before its heavy imports and by :mod:`payload.reading`: a named pipe,
a device, a symbolic link loop or an unreadable file is refused here with one line, where a
reader would block forever or raise something no user should have to decode.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from payload.errors import InvalidInputError

_NOT_REGULAR = {
    stat.S_IFIFO: "a named pipe",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def _kind_problem(path: Path) -> str | None:
    """Why ``path`` cannot be opened as data, from its status alone (never opens it).

    A named pipe or a device would block or stream forever when read, so anything that is
    not a regular file or a directory is refused here, before any reader touches it.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            return f"is a symbolic link to {os.readlink(path)}, which does not exist"
        return "file does not exist"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symbolic link loop (it resolves to itself)"
        if exc.errno == errno.ENAMETOOLONG:
            return "has a name too long for this file system"
        return f"cannot be accessed ({exc.strerror or exc})"
    kind = stat.S_IFMT(mode)
    if kind in _NOT_REGULAR:
        return f"is {_NOT_REGULAR[kind]}, not a regular file or directory; copy the data to a file"
    if kind not in (stat.S_IFREG, stat.S_IFDIR):
        return "is not a regular file or directory"
    if not os.access(path, os.R_OK | (os.X_OK if kind == stat.S_IFDIR else 0)):
        return "cannot be read (permission denied)"
    return None


def check_input_path(path: Path) -> None:
    """Refuse an input that does not exist, cannot be read, is empty or is no file.

    Directories (Measurement Sets, MWA raw) are checked member by member, without
    following links out of the tree more than once, so a pipe inside one is refused too.
    """
    problem = _kind_problem(path)
    if problem is not None:
        raise InvalidInputError(f"{path}: {problem}")
    if path.is_file():
        if path.stat().st_size == 0:
            raise InvalidInputError(f"{path}: file is empty (0 bytes)")
        return
    members = 0
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            member = Path(root) / name
            members += 1
            problem = _kind_problem(member)
            if problem is not None:
                raise InvalidInputError(f"{member}: {problem}")
    if members == 0:
        raise InvalidInputError(f"{path}: directory is empty")
