"""Two named instances on two databases in one process stay isolated: the same run id exists in
both with different journals, a signal to one never reaches the other, each engine claims only
from its own database, and lease owners and telemetry carry the instance name."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import continuum_nb as cn
from continuum_nb import api, telemetry
from continuum_nb.errors import InstanceNotRegistered
from tests.faults import fault_workflows as fx

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def two_instances(db_url: str, empty_db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    # The activities' side-effect ledger lives in the first database.
    monkeypatch.setenv("FX_DATABASE_URL", db_url)
    billing = cn.Instance("fx-billing", database_url=db_url, lease_ttl=2.0, heartbeat=0.5)
    # The second database is empty: the instance migrates it on first connect.
    shipping = cn.Instance("fx-shipping", database_url=empty_db_url, lease_ttl=2.0, heartbeat=0.5)
    try:
        assert shipping.store is not None
        fx.install(db_url)
        fx.install(empty_db_url)
        yield billing, shipping
    finally:
        billing.close()
        shipping.close()


def test_two_named_instances_on_two_databases_stay_isolated(
    two_instances: tuple[Any, Any], db_url: str, empty_db_url: str
) -> None:
    billing, shipping = two_instances
    seen: list[tuple[tuple[str, ...], dict[str, Any]]] = []
    handler = f"fx-{uuid.uuid4().hex[:6]}"
    telemetry.attach(handler, [("continuum", "run", "started"), ("continuum", "run", "completed")],
                     lambda event, _m, meta: seen.append((event, dict(meta))))
    try:
        rid = str(uuid.uuid4())
        cn.start("fx_steps", {"tag": "billing", "n": 3}, instance="fx-billing", run_id=rid)
        cn.start("fx_steps", {"tag": "shipping", "n": 4}, instance=shipping, run_id=rid)
        assert cn.wait(rid, 60, instance=billing) == 0 + 1 + 2
        assert cn.wait(rid, 60, instance="fx-shipping") == 0 + 1 + 2 + 3
        assert [e.seq for e in api.events(rid, instance=billing)] == list(range(1, 7))
        assert [e.seq for e in api.events(rid, instance=shipping)] == list(range(1, 9))

        # A signal goes to one instance's run only.
        sid = str(uuid.uuid4())
        cn.start("fx_signal", {"tag": "sb"}, instance=billing, run_id=sid)
        cn.start("fx_signal", {"tag": "ss"}, instance=shipping, run_id=sid)
        cn.signal(sid, "go", {"to": "billing"}, instance="fx-billing")
        assert cn.wait(sid, 60, instance=billing) == {"got": {"to": "billing"}, "step": 1}
        info = api.get_run(sid, instance=shipping)
        assert info.state == "suspended"
        assert [e.event_type for e in api.events(sid, instance=shipping)] == ["signal_awaited"]
        cn.cancel(sid, instance=shipping)
        assert api.get_run(sid, instance=shipping).state == "cancelled"
        assert api.get_run(sid, instance=billing).state == "completed"
    finally:
        telemetry.detach(handler)

    # Every journal row in each database was written under a lease owned by that instance.
    for url, name in ((db_url, "fx-billing"), (empty_db_url, "fx-shipping")):
        owners = {o for (o,) in fx.query(url, "SELECT DISTINCT lease_owner FROM fx_writes WHERE kind = 'event'")}
        assert owners and all(o.startswith(f"{name}@") for o in owners), owners
    # The side effects of each instance's activities carry its tag only, once each.
    assert sorted(k for (k,) in fx.query(db_url, "SELECT key FROM fx_effects")) == sorted(
        [f"billing:{i}" for i in range(3)] + [f"shipping:{i}" for i in range(4)] + ["sb:1"]
    )
    # Telemetry names the instance.
    for event in (("continuum", "run", "started"), ("continuum", "run", "completed")):
        instances = sorted(m["instance"] for e, m in seen if e == event and m["run_id"] == rid)
        assert instances == ["fx-billing", "fx-shipping"], (event, instances)


def test_unknown_instance_name_is_refused() -> None:
    with pytest.raises(InstanceNotRegistered, match="fx-nope"):
        cn.instance("fx-nope")
    with pytest.raises(InstanceNotRegistered):
        cn.runs(instance="fx-nope")
