"""The notifications topic of the ``notify`` operations tool (stepcrew.tools.notify).

- **FIFO** (``stepcrew-<stage>-notifications.fifo``), without content-based deduplication: the tool sends a
  ``MessageDeduplicationId`` derived from the call's receipt key, so a retried, redriven or resumed call that has to
  publish again within SNS's 5-minute deduplication interval is accepted and not delivered twice (SNS API reference,
  Publish). Deduplication scope: the whole topic (``FifoThroughputScope.TOPIC``); message group: the run id.
- Encrypted with the AWS managed key ``alias/aws/sns``: only the tool's role publishes (its IAM ``sns:Publish``
  on this topic; that key's policy lets this account's principals use it through SNS, so the role needs no KMS
  statement), and no AWS service publishes to it.
- TLS only: the topic policy denies publishing over plain HTTP (``enforce_ssl``, cdk-nag AwsSolutions-SNS3).
- Subscribers: FIFO topics deliver to SQS queues only (FIFO or standard; no e-mail or HTTP endpoints). Subscribe a
  queue after deploy (``aws sns subscribe --protocol sqs ...``) and forward from it as needed.
"""

from __future__ import annotations

from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from stepcrew_infra.config import StageConfig

#: The AWS managed key of SNS (server-side encryption of the topic).
SNS_MANAGED_KEY = "alias/aws/sns"


class Notifications(Construct):
    """``topic``: the FIFO notifications topic (``STEPCREW_NOTIFY_TOPIC_ARN`` of the ``publishes_notifications``
    functions)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self, "Topic", topic_name=f"{config.resource_name('notifications')}.fifo", fifo=True,
            content_based_deduplication=False, fifo_throughput_scope=sns.FifoThroughputScope.TOPIC,
            master_key=kms.Alias.from_alias_name(self, "SnsManagedKey", SNS_MANAGED_KEY), enforce_ssl=True,
            display_name=f"stepcrew {config.stage} notifications")
