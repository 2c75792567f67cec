"""SQS dead-letter queues: SQS-managed encryption (SSE-SQS), TLS-only access policy, 14 days' retention.

Every queue made here is registered in ``registry`` (name -> queue) so that the monitoring construct gives each
one a depth alarm and a dashboard line. Replay once the cause is fixed: :data:`constants.REDRIVE_COMMANDS`.

SSE-SQS (not a customer KMS key) on purpose: EventBridge, EventBridge Scheduler and Lambda can send to an
SSE-SQS queue without key-policy grants, and a DLQ holds only run requests and event envelopes.
"""

from __future__ import annotations

from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stepcrew_infra import constants as C
from stepcrew_infra.config import StageConfig
from stepcrew_infra.nag import acknowledge


def dead_letter_queue(scope: Construct, construct_id: str, *, name: str, purpose: str, config: StageConfig,
                      registry: dict[str, sqs.Queue]) -> sqs.Queue:
    """A DLQ named ``stepcrew-<stage>-<name>`` receiving what ``purpose`` describes; added to ``registry``."""
    queue = sqs.Queue(scope, construct_id, queue_name=config.resource_name(name),
                      encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
                      retention_period=C.DLQ_RETENTION, removal_policy=config.removal_policy)
    acknowledge(queue, "AwsSolutions-SQS3",
                f"{name} is itself a dead-letter queue ({purpose}); it is read by hand or redriven, is alarmed on "
                "depth > 0, and a DLQ of a DLQ would only move the same messages once more.")
    if name in registry:
        raise ValueError(f"two dead-letter queues named {name!r}")
    registry[name] = queue
    return queue
