"""The in-memory store: ``MemoryStore`` (the store contract in plain Python, for fast unit tests)
and its listener, ``MemoryListener``.

- ``store``: ``MemoryStore``, assembled from the parts below;
- ``tables``: the rows and the one lock every part shares;
- ``journal``: new runs, wakes and the journal;
- ``leases``: claims, renewals, releases and recovery of leases;
- ``listener``: ``MemoryListener``, the stand-in for a LISTEN connection;
- ``rows``: the plain row types and the JSON copy.
"""

from __future__ import annotations

from .listener import MemoryListener
from .store import MemoryStore

__all__ = ["MemoryListener", "MemoryStore"]
