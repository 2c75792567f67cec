"""The ``notify`` operations tool: publishes a short message (subject + body) to the stack's notifications SNS topic.

- **Dry run by default**: unless the run allows side effects (``ToolContext.allow_side_effects``), nothing is published
  and the result says what would be (``dry_run: true``, the subject, the body's size and SHA-256, the attributes).
- **Exactly once** (:func:`stepcrew.tools.receipts.exactly_once`): a receipt keyed on run, sub-task and call id is
  written before the publish and completed after. A DONE receipt returns the first result (``replayed: true``).
  A publish cannot be checked afterwards, so a PENDING receipt (an attempt died between the publish and the receipt's
  end) is settled by the topic's deduplication when it can be, else never repeated:

  - on a FIFO topic (ARN ending ``.fifo``, what the stack deploys) every attempt of one call publishes with the same
    ``MessageDeduplicationId`` (:func:`deduplication_id`, from the receipt key): SNS accepts a repeat within its
    5-minute deduplication interval and does not deliver it (SNS API reference, Publish: MessageDeduplicationId).
    So an attempt that finds a PENDING receipt younger than :data:`SAFE_REPUBLISH_S` (4 minutes: a minute of margin
    for clocks) publishes again with that id and completes the receipt (``replayed: true``, ``settled_by:
    "fifo_deduplication"``): at most one delivery, and exactly one if the first attempt died before publishing;
  - an older PENDING receipt, or any PENDING receipt on a standard topic: ``OperationInDoubt`` (a person checks the
    topic's subscribers), never a second publish.

- Each message carries ``run_id``, ``tenant`` and ``subtask_id`` as String message attributes; ``MessageGroupId`` is the
  run id (FIFO order per run). Logs carry ids only (run, sub-task, call, message id), never the subject or body.
- Limits (SNS API reference, Publish): the subject is printable ASCII without line breaks, 1-99 characters ("less than
  100 characters"; printable ASCII so an e-mail subscriber's subject line takes it as is); the body is UTF-8 text and
  body + message attributes are at most :data:`SNS_MESSAGE_MAX_BYTES` (256 KiB = 262,144 bytes, "not 262,144
  characters"). In a run the agent caps a call's arguments at :data:`stepcrew.models.TOOL_ARGUMENTS_MAX_BYTES`
  (16 KiB) first. Over a cap: ``InvalidArguments`` (subject, body alone) or ``LimitExceeded`` (with attributes).

Ports: :class:`Publisher` with :class:`SnsPublisher` (a boto3 SNS client built once per cold start) and
:class:`MemoryPublisher` (tests; it models FIFO deduplication like SNS). :func:`list_notifications` lists a run's
notification receipts for its tenant (``stepcrew runs show``).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stepcrew.models import ToolCall, ToolContext, utcnow
from stepcrew.settings import RoleSettings
from stepcrew.tools.base import LimitExceeded, Tool, ToolArgs
from stepcrew.tools.receipts import OperationInDoubt, Receipt, ReceiptStore, exactly_once, receipt_pk

logger = logging.getLogger(__name__)

#: SNS Publish: a message (body + message attributes) is at most 256 KiB of UTF-8 (SNS API reference, Publish).
SNS_MESSAGE_MAX_BYTES = 262_144
#: SNS Publish: a subject is "less than 100 characters long", without line breaks or control characters.
SUBJECT_MAX_CHARS = 99
#: SNS FIFO topics drop a repeated MessageDeduplicationId within 5 minutes (SNS API reference, Publish).
FIFO_DEDUPLICATION_S = 300
#: How old a PENDING receipt may be for an attempt to publish again with the same deduplication id (a minute of margin
#: under :data:`FIFO_DEDUPLICATION_S` for the clocks of two Lambda invocations and SNS).
SAFE_REPUBLISH_S = 240
#: The clock difference tolerated between two attempts (a receipt "started" up to this many seconds in the future is
#: read as just started): with it, a receipt read as younger than SAFE_REPUBLISH_S is at most FIFO_DEDUPLICATION_S old.
CLOCK_SKEW_S = FIFO_DEDUPLICATION_S - SAFE_REPUBLISH_S
#: The message attributes every notification carries (String attributes; their bytes count towards the 256 KiB).
ATTRIBUTES = ("run_id", "tenant", "subtask_id")


class NotifyArgs(ToolArgs):
    subject: str = Field(min_length=1, max_length=SUBJECT_MAX_CHARS, pattern=r"^[\x20-\x7E]+$",
                         description="one line of printable ASCII")
    body: str = Field(min_length=1, description="the message text")

    @field_validator("body")
    def _body_bytes(cls, body: str) -> str:
        size = len(body.encode())
        if size > SNS_MESSAGE_MAX_BYTES:
            raise ValueError(f"the body is {size} bytes of UTF-8, over SNS's limit of {SNS_MESSAGE_MAX_BYTES}")
        return body


# ------------------------------------------------------------------------------------------------ result
class MessageSummary(BaseModel):
    """What a notification is (or would be), without its body: the subject, the body's UTF-8 bytes and SHA-256 (hex),
    the message attributes."""

    model_config = ConfigDict(extra="forbid")
    subject: str
    body_bytes: int = Field(ge=1, le=SNS_MESSAGE_MAX_BYTES)
    body_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    attributes: dict[str, str]


class Published(MessageSummary):
    """A published notification: plus the SNS message id, the deduplication id (FIFO topics) and whether it was FIFO."""

    message_id: str = Field(min_length=1)
    deduplication_id: str | None = None
    fifo: bool


class NotifyResult(BaseModel):
    """The tool's result (:attr:`Notify.Result`): ``{"dry_run": true, "would_publish", "note"}`` or ``{"published"}``
    (``replayed: true`` when an earlier attempt of the call did it; ``settled_by: "fifo_deduplication"`` when a
    PENDING receipt was settled by publishing again with the same deduplication id)."""

    model_config = ConfigDict(extra="forbid")
    dry_run: Literal[True] | None = None
    would_publish: MessageSummary | None = None
    note: str | None = None
    published: Published | None = None
    replayed: bool | None = None
    settled_by: Literal["fifo_deduplication"] | None = None

    @model_validator(mode="after")
    def _one_outcome(self) -> NotifyResult:
        if (self.would_publish is None) == (self.published is None) or (self.dry_run is True) != (
                self.published is None):
            raise ValueError("exactly one of a dry run (dry_run, would_publish) or published")
        return self


# ------------------------------------------------------------------------------------------------ publisher port
@dataclass(frozen=True)
class Notification:
    """One message to publish. ``group_id`` and ``deduplication_id`` are used by FIFO topics only."""

    subject: str
    body: str
    attributes: dict[str, str]
    group_id: str
    deduplication_id: str


class Publisher(ABC):
    """The publisher port. ``fifo``: the destination deduplicates on ``Notification.deduplication_id`` for
    :data:`FIFO_DEDUPLICATION_S` seconds (what lets a retry after a crash publish again safely)."""

    fifo: bool = False

    @abstractmethod
    def publish(self, message: Notification) -> str:
        """Publish ``message``; returns the message id. Raises on any failure (nothing is known to be published)."""


class MemoryPublisher(Publisher):
    """Messages in a list (tests). ``delivered``: what subscribers would receive; ``calls``: publish calls. With
    ``fifo`` a deduplication id seen less than :data:`FIFO_DEDUPLICATION_S` ago (by ``clock``, seconds) is accepted
    and not delivered, returning the first message id, as SNS FIFO does."""

    def __init__(self, *, fifo: bool = True, clock: Callable[[], float] = time.monotonic) -> None:
        self.fifo = fifo
        self.clock = clock
        self.delivered: list[Notification] = []
        self.calls = 0
        self._seen: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def publish(self, message: Notification) -> str:
        with self._lock:
            self.calls += 1
            now = self.clock()
            if self.fifo:
                seen = self._seen.get(message.deduplication_id)
                if seen is not None and now - seen[0] < FIFO_DEDUPLICATION_S:
                    return seen[1]
            message_id = f"mem-{len(self.delivered) + 1}"
            self.delivered.append(message)
            if self.fifo:
                self._seen[message.deduplication_id] = (now, message_id)
            return message_id


class SnsPublisher(Publisher):
    """Publishes to the SNS topic ``topic_arn`` (``client``: a boto3 SNS client, built once per cold start). A topic
    whose ARN ends in ``.fifo`` is FIFO: ``MessageGroupId`` and ``MessageDeduplicationId`` are sent."""

    def __init__(self, client: Any, topic_arn: str) -> None:
        self.client, self.topic_arn = client, topic_arn
        self.fifo = topic_arn.endswith(".fifo")

    def publish(self, message: Notification) -> str:
        params: dict[str, Any] = {
            "TopicArn": self.topic_arn, "Subject": message.subject, "Message": message.body,
            "MessageAttributes": {k: {"DataType": "String", "StringValue": v} for k, v in message.attributes.items()}}
        if self.fifo:
            params["MessageGroupId"] = message.group_id
            params["MessageDeduplicationId"] = message.deduplication_id
        return self.client.publish(**params)["MessageId"]


class NotifyToolSettings(RoleSettings):
    """Settings of the ``tool_notify`` function (validated at init: :func:`stepcrew.settings.load_settings`). Its
    receipts live in the run table (``STEPCREW_TABLE_NAME``, ``RECEIPT#*`` keys).

    - ``STEPCREW_NOTIFY_TOPIC_ARN``: the notifications topic (an SNS topic ARN; ``.fifo`` for a FIFO topic).
    """

    topic_arn: str = Field(alias="STEPCREW_NOTIFY_TOPIC_ARN", max_length=1600,
                           pattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")


# ------------------------------------------------------------------------------------------------ the tool
def deduplication_id(run_id: str, subtask_id: str, call_id: str) -> str:
    """The FIFO ``MessageDeduplicationId`` of one call: SHA-256 (64 hex characters, within SNS's 128) of its receipt
    key, so every attempt of the call (ASL retry, redrive, resume) sends the same id."""
    return hashlib.sha256(f"{receipt_pk(run_id)}/{subtask_id}#{call_id}".encode()).hexdigest()


def attributes_bytes(attributes: dict[str, str]) -> int:
    """Bytes the message attributes add to a message (names, the ``String`` type and values, UTF-8: what SNS counts
    towards the 256 KiB message size)."""
    return sum(len(k.encode()) + len(b"String") + len(v.encode()) for k, v in attributes.items())


class _Watched(ReceiptStore):
    """A receipt store that remembers the receipt ``begin`` found (what a PENDING receipt's age is read from)."""

    def __init__(self, inner: ReceiptStore) -> None:
        self.inner = inner
        self.existing: Receipt | None = None

    def begin(self, receipt: Receipt) -> Receipt | None:
        self.existing = self.inner.begin(receipt)
        return self.existing

    def complete(self, run_id: str, subtask_id: str, call_id: str, result: dict[str, Any]) -> None:
        self.inner.complete(run_id, subtask_id, call_id, result)


class Notify(Tool):
    name = "notify"
    description = ("Send a short notification (subject, body) to the team's notifications topic. Dry run unless the "
                   "run allows side effects: it then says what it would send. Each call sends at most once.")
    Args: ClassVar[type[NotifyArgs]] = NotifyArgs
    Result: ClassVar[type[NotifyResult]] = NotifyResult

    def __init__(self, receipts: ReceiptStore | Callable[[], ReceiptStore],
                 publisher: Publisher | Callable[[], Publisher], *,
                 clock: Callable[[], Any] = utcnow) -> None:
        """``receipts`` and ``publisher``: the adapters, or factories called at the first real publish (a dry run
        builds no client). ``clock``: now as an aware datetime (a PENDING receipt's age)."""
        self._receipts, self._publisher, self._clock = receipts, publisher, clock

    def _adapters(self) -> tuple[ReceiptStore, Publisher]:
        if not isinstance(self._receipts, ReceiptStore):
            self._receipts = self._receipts()
        if not isinstance(self._publisher, Publisher):
            self._publisher = self._publisher()
        return self._receipts, self._publisher

    def run(self, args: NotifyArgs, ctx: ToolContext) -> dict[str, Any]:  # pragma: no cover - run_call is used
        raise NotImplementedError("notify needs its call: Tool.invoke calls run_call")

    def run_call(self, args: NotifyArgs, ctx: ToolContext, call: ToolCall) -> dict[str, Any]:
        tenant = ctx.tenant or "default"
        attributes = {"run_id": ctx.run_id, "tenant": tenant, "subtask_id": ctx.subtask_id}
        body = args.body.encode()
        size = len(body) + attributes_bytes(attributes)
        if size > SNS_MESSAGE_MAX_BYTES:
            raise LimitExceeded(f"the message would be {size} bytes with its attributes, over SNS's limit of "
                                f"{SNS_MESSAGE_MAX_BYTES}: send a shorter body")
        summary = {"subject": args.subject, "body_bytes": len(body),
                   "body_sha256": hashlib.sha256(body).hexdigest(), "attributes": attributes}
        ids = {"run_id": ctx.run_id, "subtask_id": ctx.subtask_id, "call_id": call.call_id, "tool": self.name}
        if not ctx.allow_side_effects:
            logger.info("notify dry run", extra=ids)
            return {"dry_run": True, "would_publish": summary,
                    "note": "side effects are off for this run: nothing was sent"}
        receipts, publisher = self._adapters()
        watched = _Watched(receipts)
        dedup = deduplication_id(ctx.run_id, ctx.subtask_id, call.call_id)
        message = Notification(subject=args.subject, body=args.body, attributes=attributes, group_id=ctx.run_id,
                               deduplication_id=dedup)

        def effect() -> dict[str, Any]:
            message_id = publisher.publish(message)
            logger.info("notification published", extra={**ids, "message_id": message_id, "fifo": publisher.fifo})
            return {"published": {**summary, "message_id": message_id,
                                  "deduplication_id": dedup if publisher.fifo else None, "fifo": publisher.fifo}}

        def settle() -> dict[str, Any]:
            # a PENDING receipt: an earlier attempt began and never recorded its end (it may have published)
            existing = watched.existing
            age_s = (self._clock() - existing.started_at).total_seconds() if existing is not None else None
            if publisher.fifo and age_s is not None and -CLOCK_SKEW_S <= age_s < SAFE_REPUBLISH_S:
                logger.warning("notify: settling a PENDING receipt by a FIFO-deduplicated publish",
                               extra={**ids, "receipt_age_s": round(age_s, 1)})
                return {**effect(), "settled_by": "fifo_deduplication"}
            logger.error("notify: PENDING receipt, not published again", extra={**ids, "fifo": publisher.fifo})
            why = ("the topic does not deduplicate" if not publisher.fifo else
                   f"it is older than {SAFE_REPUBLISH_S} s, past the topic's deduplication interval")
            raise OperationInDoubt(f"an earlier attempt of call {call.call_id} began this notification and did not "
                                   f"record its end; {why}, so it is not sent again: a person must check whether it "
                                   "was delivered")

        return exactly_once(watched, ctx, call, effect, verify=settle)


# ------------------------------------------------------------------------------------------------ listing
@dataclass
class NotificationRecord:
    """One notify call of a run, from its receipt: ``status`` PENDING (in doubt) or DONE; ``result`` the tool's
    ``published`` summary (subject, sizes, attributes, message id) when DONE."""

    subtask_id: str
    call_id: str
    status: str
    started_at: str
    published: dict[str, Any] | None = field(default=None)


def list_notifications(client: Any, table_name: str, run_id: str, tenant: str) -> list[NotificationRecord]:
    """The notify receipts of run ``run_id`` that belong to ``tenant`` (another tenant's are left out, as if absent),
    oldest first. ``client``: a boto3 DynamoDB client on the run table (a Query of the ``RECEIPT#<run_id>``
    partition)."""
    from stepcrew.store import schema as s

    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table_name, "KeyConditionExpression": "#pk = :pk",
                              "ExpressionAttributeNames": {"#pk": s.PK},
                              "ExpressionAttributeValues": {":pk": {"S": receipt_pk(run_id)}}}
    while True:
        page = client.query(**kwargs)
        items += page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    out = []
    for item in items:
        receipt = Receipt.model_validate_json(item["body"]["S"])
        if receipt.tenant != tenant or receipt.tool != Notify.name:
            continue
        out.append(NotificationRecord(subtask_id=receipt.subtask_id, call_id=receipt.call_id, status=receipt.status,
                                      started_at=receipt.started_at.isoformat(),
                                      published=(receipt.result or {}).get("published")))
    return sorted(out, key=lambda r: r.started_at)
