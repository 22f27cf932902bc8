"""A ``continuum worker`` process for the benchmarks that start several (workers.py, recovery.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class Worker:
    """``continuum worker`` importing ``module`` (its workflows), as its own process.

    Its output goes to a file, not a pipe: a pipe nobody reads after the ready line would fill
    and block the worker. The environment's ``CONTINUUM_*`` variables are dropped (the command
    line and ``extra_env`` say everything), so a developer's settings do not leak into a figure.
    """

    def __init__(self, url: str, *, module: str, lease_ttl: float, concurrency: int,
                 name: str | None = None, extra_env: dict[str, str] | None = None, quiet: bool = False) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTINUUM_")} | (extra_env or {})
        self._log = tempfile.NamedTemporaryFile(prefix=f"worker-{name or 'bench'}-", suffix=".log")  # noqa: SIM115
        argv = [sys.executable, "-m", "continuum_nb", "worker", "--database-url", url, "--import", module,
                "--lease-ttl", str(lease_ttl), "--concurrency", str(concurrency)]
        if name is not None:
            argv += ["--instance", name]
        if quiet:
            argv.append("--quiet")
        self.proc = subprocess.Popen(  # noqa: S603 - our own CLI
            argv, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return Path(self._log.name).read_bytes().decode(errors="replace")

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until the worker printed its ready line (it then claims runs)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if " ready " in self.log():
                return
            time.sleep(0.1)
        raise RuntimeError(f"worker did not start: {self.log()[-2000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
