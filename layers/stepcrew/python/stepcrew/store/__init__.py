"""Store port and adapters (DynamoDB single table; in-memory fake)."""

from stepcrew.store.base import RunExistsError, RunNotFoundError, RunStateConflictError, RunStore, StoreError

__all__ = ["RunExistsError", "RunNotFoundError", "RunStateConflictError", "RunStore", "StoreError"]
