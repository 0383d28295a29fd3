"""A bounded per-process memo for work that depends on a config alone (meta-device builds, parameter counts)."""

from __future__ import annotations

from typing import Callable, Hashable, TypeVar

T = TypeVar("T")
LIMIT = 64  # entries a store keeps before it is emptied: a job names few models, a long-lived process many


def remembered(store: dict, key: Hashable, make: Callable[[], T]) -> T:
    """store[key], made by make() the first time it is asked for; the store is emptied once it holds LIMIT."""
    if key not in store:
        if len(store) >= LIMIT:
            store.clear()
        store[key] = make()
    return store[key]
