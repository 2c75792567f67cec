"""EventBridge publishing (``PutEvents``) for the events stepcrew emits, e.g. ``stepcrew.run.needs_review``.

``PutEvents`` can accept a call and still fail an entry (``FailedEntryCount``): that is an error here too, so the
state machine's Retry sees it (EventBridge API reference, PutEvents). The client is built at first use.
"""

from __future__ import annotations

import json
from typing import Any


class PublishError(RuntimeError):
    """EventBridge rejected the event (the entry's error code is in the message)."""


class EventBridgePublisher:
    """Publishes to the event bus ``bus`` (name or ARN; ``default`` is the account's default bus) with source
    ``source``."""

    def __init__(self, bus: str, *, source: str = "stepcrew", client: Any = None) -> None:
        self.bus = bus
        self.source = source
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("events")
        return self._client

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        """One event; raises PublishError when the entry failed, or botocore's ClientError."""
        resp = self.client.put_events(Entries=[{"Source": self.source, "DetailType": detail_type,
                                                "Detail": json.dumps(detail), "EventBusName": self.bus}])
        if resp.get("FailedEntryCount"):
            entry = next((e for e in resp.get("Entries", []) if e.get("ErrorCode")), {})
            raise PublishError(f"EventBridge rejected {detail_type}: {entry.get('ErrorCode', 'unknown error')}")
