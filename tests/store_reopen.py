"""How another process opens the same store as a test (the claimers' race in test_store.py).

A module of its own, not conftest.py: ``from conftest import ...`` finds whichever conftest.py
pytest put first on sys.path, and tests/e2e has one of its own.
"""

from __future__ import annotations

from typing import Any


def how_to_reopen(store) -> tuple | None:
    """What another process needs to open the same store (see reopen); None for memory."""
    from drqueue.store.mongo import MongoStore
    from drqueue.store.sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        return ("sqlite", store.path)
    if isinstance(store, MongoStore):
        return ("mongo", store.url, store.transactions)
    return None


def reopen(how: tuple) -> Any:
    """The store how_to_reopen describes, opened again (in another process)."""
    from drqueue.store.mongo import MongoStore
    from drqueue.store.sqlite import SQLiteStore

    if how[0] == "sqlite":
        return SQLiteStore(how[1])
    return MongoStore(how[1], transactions=how[2])
