"""Durable state: the Store interface and its backends."""

from drqueue.store.base import SCHEMA_VERSION, Dispatch, Event, Store, open_store, shown_url

__all__ = ["SCHEMA_VERSION", "Dispatch", "Event", "Store", "open_store", "shown_url"]
