"""Signal contracts: ``@cn.workflow(signals={"approve": {"by": str, "ok": bool}, "poke": None})``.

A contract names every signal a workflow accepts and the shape of each payload: ``None`` (the
signal carries no payload) or a dict of field names to types. A field's type is one of ``str``,
``int``, ``float`` (an int is accepted), ``bool``, ``list``, ``dict``, ``type(None)``, a tuple
of them (``(str, type(None))``: optional), or a nested contract dict. Every field is required and
no other field is accepted. Checked when a signal is sent, before it reaches the mailbox.
"""

from __future__ import annotations

from typing import Any

from ..store.payloads import check_name

__all__ = ["SignalContract", "check_signal", "normalise_contract"]

#: signal name -> None (no payload) or {field: type | tuple of types | nested contract}
SignalContract = dict[str, Any]

_TYPES = (str, int, float, bool, list, dict, type(None))


def _check_type(spec: Any, where: str) -> None:
    if isinstance(spec, dict):
        for field, sub in spec.items():
            check_name(field, f"field name in {where}")
            _check_type(sub, f"{where}.{field}")
        return
    specs = spec if isinstance(spec, tuple) and spec else (spec,)
    for s in specs:
        if s not in _TYPES:
            raise TypeError(
                f"signals= contract {where}: {s!r} is not a payload type; use str, int, float, bool, "
                "list, dict, type(None), a tuple of them, or a dict of fields"
            )


def normalise_contract(signals: Any, workflow: str) -> SignalContract | None:
    """``signals=`` as given to ``@cn.workflow``, checked (one clear error), or None (no contract)."""
    if signals is None:
        return None
    if not isinstance(signals, dict):
        raise TypeError(
            f"@cn.workflow({workflow!r}) signals= must be a dict of signal names to None or a dict of "
            f"field types, e.g. {{'approve': {{'by': str}}, 'poke': None}}, not {type(signals).__name__}"
        )
    out: SignalContract = {}
    for name, spec in signals.items():
        check_name(name, f"signal name in the signals= contract of workflow {workflow!r}")
        if spec is not None:
            if not isinstance(spec, dict):
                raise TypeError(
                    f"signals= contract of workflow {workflow!r}: signal {name!r} must map to None (no "
                    f"payload) or a dict of field types, not {spec!r}"
                )
            _check_type(spec, f"of workflow {workflow!r}, signal {name!r}")
        out[name] = spec
    return out


def _type_name(spec: Any) -> str:
    specs = spec if isinstance(spec, tuple) else (spec,)
    return " or ".join("None" if s is type(None) else s.__name__ for s in specs)


def _matches(value: Any, spec: Any) -> bool:
    for s in spec if isinstance(spec, tuple) else (spec,):
        if s is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if s is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if s is not int and s is not float and isinstance(value, s):
            return True
    return False


def _check_fields(payload: Any, spec: dict[str, Any], what: str) -> None:
    if not isinstance(payload, dict):
        raise TypeError(f"{what}: the payload must be a dict with fields {sorted(spec)}, not {type(payload).__name__}")
    missing = [f for f in spec if f not in payload]
    if missing:
        raise ValueError(f"{what}: field {missing[0]!r} is missing (expected fields: {', '.join(spec)})")
    extra = [f for f in payload if f not in spec]
    if extra:
        raise ValueError(f"{what}: field {extra[0]!r} is not declared (expected fields: {', '.join(spec)})")
    for field, sub in spec.items():
        value = payload[field]
        if isinstance(sub, dict):
            _check_fields(value, sub, f"{what}, field {field!r}")
        elif not _matches(value, sub):
            raise TypeError(f"{what}: field {field!r} must be {_type_name(sub)}, not {type(value).__name__} {value!r:.60}")


def check_signal(contract: SignalContract, workflow: str, name: str, payload: Any) -> None:
    """Refuse (``ValueError``/``TypeError``, one line naming the field) a signal the workflow's
    contract does not accept."""
    if name not in contract:
        declared = ", ".join(repr(n) for n in contract) or "none"
        raise ValueError(
            f"workflow {workflow!r} does not accept signal {name!r}: its signals= contract declares {declared}"
        )
    spec = contract[name]
    what = f"signal {name!r} to workflow {workflow!r}"
    if spec is None:
        if payload is not None:
            raise TypeError(f"{what} carries no payload (its contract says None), but one was given: {payload!r:.60}")
        return
    _check_fields(payload, spec, what)
