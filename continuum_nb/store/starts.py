"""A run's first wake committed with the run's insert, through the group commit.

``Runner.start`` drives a new run to its first suspension and inserts the run with that wake in
one transaction (``Store.create_run(first_wake=...)``). Wrapped as a ``StartingWake``, the same
insert can share a commit with other runs' wakes (``Store.commit_wakes``): many callers starting
runs at once then pay one round trip and one durable commit per batch, not one each. The store
commits a ``StartingWake`` exactly as ``create_run(run, owner=owner, lease_ttl=start_lease_ttl,
first_wake=wake)`` (the wake's own ``lease_token`` is ignored: the insert makes the lease) and
returns the new lease token in ``WakeResult.lease_token``. A run id that exists already refuses
that wake alone (``ValueError``: "already exists").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .base import NewRun, Wake

__all__ = ["StartingWake", "starting_wake"]


@dataclass
class StartingWake(Wake):
    """The first wake of ``new_run``, inserting it leased to ``owner`` for ``start_lease_ttl`` s."""

    new_run: NewRun | None = field(default=None)
    owner: str = ""
    start_lease_ttl: float = 30.0

    def run(self) -> NewRun:
        if self.new_run is None or not self.owner:
            raise ValueError(f"run {self.run_id}: a starting wake needs the new run and its owner")
        return self.new_run


def starting_wake(wake: Wake, run: NewRun, owner: str, lease_ttl: float) -> StartingWake:
    """``wake`` (a plain ``Wake``) as the first wake that inserts ``run``."""
    if type(wake) is not Wake:
        raise TypeError(f"run {run.id}: only a plain first wake can be grouped, not a {type(wake).__name__}")
    # Its fields as they are (a Wake keeps them in its __dict__; dataclasses.fields() per start
    # was a tenth of a start's Python): the wake is the caller's, built for this commit alone.
    return StartingWake(**wake.__dict__, new_run=run, owner=owner, start_lease_ttl=lease_ttl)
