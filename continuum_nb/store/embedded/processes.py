"""Whether a server is there: the ``postmaster.pid`` file, the process it names (not a reused PID),
and the Unix socket it accepts connections on."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PORT", "PidFile", "is_postgres_process", "listening", "read_pidfile"]

#: Port number: only names the socket file (.s.PGSQL.5432); no TCP listener is opened.
PORT = 5432


@dataclass(frozen=True)
class PidFile:
    """The lines of ``postmaster.pid`` (or of a socket's ``.lock`` file) we use."""

    pid: int
    port: int
    socket_dir: Path | None
    state: str  # "starting", "ready", "stopping", "standby", or "" while being written


def read_pidfile(path: Path) -> PidFile | None:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return None
    try:
        pid = int(lines[0])
    except (IndexError, ValueError):
        return PidFile(0, PORT, None, "")  # half-written by a starting postmaster
    port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else PORT
    sock = lines[4].strip() if len(lines) > 4 else ""
    state = lines[7].strip() if len(lines) > 7 else ""
    return PidFile(pid, port, Path(sock.split(",")[0]) if sock else None, state)


def is_postgres_process(pid: int) -> bool:
    """Whether ``pid`` is alive and (where /proc tells) a postgres process, not a reused PID."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by another user (the server user, when we are root)
    proc = Path(f"/proc/{pid}")
    if proc.exists():
        try:
            # "pid (comm) S ...": a zombie (Z) has exited and only awaits its reaper.
            name, _, rest = (proc / "stat").read_text().rpartition(")")
            return name.split("(", 1)[1] in ("postgres", "postmaster") and rest.split()[0] != "Z"
        except (OSError, IndexError):
            return False  # exited between the two checks
    return True


def listening(socket_path: Path) -> bool:
    """Whether a server accepts connections on this Unix socket (no protocol spoken)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2.0)
        try:
            sock.connect(os.fsencode(socket_path))
        except OSError:
            return False
    return True
