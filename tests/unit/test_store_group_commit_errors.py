"""A statement PostgreSQL aborted to break a deadlock (or a serialization conflict) is a
``TransientConflict``: a kind of ``DatabaseUnavailable`` that every engine loop retries."""

from __future__ import annotations

import pytest
from psycopg import errors as pgerrors

from continuum_nb.errors import DatabaseUnavailable
from continuum_nb.store.postgres.pool import PgPool, TransientConflict


@pytest.mark.parametrize("error", [pgerrors.DeadlockDetected, pgerrors.SerializationFailure])
def test_a_deadlock_is_a_transient_conflict(error: type[Exception]) -> None:
    pool = PgPool.__new__(PgPool)  # only the translation is exercised: no connection
    mapped = pool._translate(error("deadlock detected\nDETAIL: Process 1 waits for ShareLock"))  # type: ignore[arg-type]
    assert isinstance(mapped, TransientConflict) and isinstance(mapped, DatabaseUnavailable)
    assert "nothing was written" in str(mapped)
