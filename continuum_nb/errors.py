"""Every exception continuum_nb raises on purpose.

Each message names the problem and the fix; callers (CLI, magics) print ``str(exc)`` as a
one-line error, so keep messages on one line.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ActivityFailed",
    "ChildFailed",
    "ConfigurationError",
    "ContinuumError",
    "DatabaseUnavailable",
    "DeterminismError",
    "DriftError",
    "InstanceNotRegistered",
    "InvalidRunId",
    "LeaseLost",
    "MigrationError",
    "NonRetryableError",
    "PartitionError",
    "RunCancelled",
    "RunFailed",
    "RunNotActive",
    "RunNotFound",
    "SignalTimeout",
    "WorkflowNotFound",
]


class ContinuumError(Exception):
    """Base class of every continuum_nb error."""


class ConfigurationError(ContinuumError, ValueError):
    """A setting, URL or argument is malformed."""


class DatabaseUnavailable(ContinuumError):
    """PostgreSQL cannot be reached (down, wrong URL, or the embedded server failed to start)."""


class MigrationError(ContinuumError):
    """The schema is missing, too old, or a migration failed."""


class PartitionError(ContinuumError, ValueError):
    """A bad partition month/name, or an event written in a month that has no partition."""


class InstanceNotRegistered(ContinuumError, KeyError):
    """No instance with that name was created in this process."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "instance not registered"


class WorkflowNotFound(ContinuumError, LookupError):
    """No workflow of that name is registered (nor stored, where stored code is allowed)."""


class RunNotFound(ContinuumError, LookupError):
    """No run with that id exists in the instance's database."""


class InvalidRunId(RunNotFound, ValueError):
    """The value given as a run id is not one (run ids are UUIDs): no run can have it."""


class RunNotActive(ContinuumError):
    """The run has already finished (completed, failed or cancelled) or is otherwise not accepting this call."""


class RunFailed(ContinuumError):
    """``wait()`` on a run that ended in ``failed`` (or ``drifted``). ``.error`` holds the stored error."""

    def __init__(self, message: str, *, run_id: str | None = None, error: Any = None) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.error = error


class RunCancelled(ContinuumError):
    """``wait()`` on a run that was cancelled."""

    def __init__(self, message: str, *, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


class ActivityFailed(ContinuumError):
    """Raised inside a workflow when an activity failed its last attempt (catchable)."""

    def __init__(
        self,
        message: str,
        *,
        activity: str | None = None,
        error_type: str | None = None,
        attempts: int | None = None,
    ) -> None:
        super().__init__(message)
        self.activity = activity
        self.error_type = error_type
        self.attempts = attempts


class ChildFailed(ContinuumError):
    """Raised inside a workflow when a child workflow (``cn.child`` / a ``cn.start_child``
    handle) failed, was cancelled, or could not be started (catchable). ``state`` is
    ``failed``, ``cancelled`` or ``refused``; ``error`` the child's recorded error."""

    def __init__(
        self,
        message: str,
        *,
        child_run_id: str | None = None,
        workflow: str | None = None,
        state: str = "failed",
        error: Any = None,
    ) -> None:
        super().__init__(message)
        self.child_run_id = child_run_id
        self.workflow = workflow
        self.state = state
        self.error = error


class NonRetryableError(ContinuumError):
    """Raised by an activity body to fail the attempt for good: no retry follows, whatever the
    activity's ``cn.Retry`` allows (a declined card, a malformed order)."""


class SignalTimeout(ContinuumError, TimeoutError):
    """Raised inside a workflow when ``await cn.signal(name, timeout=...)`` timed out."""


class DriftError(RunFailed):
    """The workflow code no longer replays its journal (see ``continuum_runs.error``).
    A run in ``drifted`` can be retried with ``cn.resume(run_id)`` once the code is fixed.
    ``.seq`` is the journal position, ``.expected`` the journal's command and ``.actual`` what
    the code asked for instead (from ``.error``, the recorded drift report)."""

    def _part(self, key: str) -> Any:
        return self.error.get(key) if isinstance(self.error, dict) else None

    @property
    def seq(self) -> int | None:
        seq = self._part("seq")
        return seq if isinstance(seq, int) else None

    @property
    def expected(self) -> Any:
        return self._part("expected")

    @property
    def actual(self) -> Any:
        return self._part("actual")


class DeterminismError(ContinuumError):
    """The determinism scan found errors (``untrusted_call_severity="error"``)."""


class LeaseLost(ContinuumError):
    """This engine's lease token is stale: another engine owns the run now. Internal."""
