"""Stateful resources: the run table, the datasets bucket (and its access-log bucket), the provider key secrets.

The table follows :mod:`stepcrew.store.schema` (the same constants the DynamoDB adapter and the local runtime
use): string keys ``PK``/``SK``, GSI ``GSI1`` on ``GSI1PK``/``GSI1SK`` projecting all attributes (lists a
tenant's runs by time), TTL on ``expires_at`` (epoch seconds), on-demand billing, point-in-time recovery,
encryption with the AWS managed key. Prod stages retain the table (and deletion protection is on); other stages
delete it with the stack. Both buckets are always retained (a stack deletion must not fail on, or silently
delete, uploaded datasets and access logs; empty and delete them by hand).
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy, SecretValue
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct
from stepcrew.store import schema

from stepcrew_infra import constants as C
from stepcrew_infra.config import StageConfig
from stepcrew_infra.nag import acknowledge


class Data(Construct):
    """``table``, ``datasets`` (bucket), ``access_logs`` (bucket), ``secrets`` (provider -> secret)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self, "RunTable",
            partition_key=dynamodb.Attribute(name=schema.PK, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=schema.SK, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            time_to_live_attribute=schema.TTL_ATTRIBUTE,
            deletion_protection=config.is_prod,
            removal_policy=config.removal_policy,
        )
        self.table.add_global_secondary_index(
            index_name=schema.GSI1_NAME,
            partition_key=dynamodb.Attribute(name=schema.GSI1_PK, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=schema.GSI1_SK, type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.ALL,
        )

        # Server access logs need SSE-S3 on the target bucket (S3 server access logging documentation); log delivery
        # is granted by a bucket policy, not an ACL (feature flag in stack.FEATURE_FLAGS). cdk-nag's S1 does not
        # ask a log-target bucket to log itself.
        self.access_logs = s3.Bucket(
            self, "AccessLogs", encryption=s3.BucketEncryption.S3_MANAGED, enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL, removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[s3.LifecycleRule(expiration=C.ACCESS_LOG_EXPIRATION)],
        )
        self.datasets = s3.Bucket(
            self, "Datasets", encryption=s3.BucketEncryption.S3_MANAGED, enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL, versioned=True,
            server_access_logs_bucket=self.access_logs, server_access_logs_prefix="datasets/",
            removal_policy=RemovalPolicy.RETAIN,
        )

        # Provider API keys: created holding {"api_key": ""} (no key: a model call fails with a one-line ModelAuthError
        # naming the secret's env var, see stepcrew.llm.secrets); put the real key in after the first deploy
        # (`aws secretsmanager put-secret-value --secret-id <AnthropicSecretArn output> --secret-string <key>`).
        # Names are generated: a deleted secret keeps its name for its 7-30 day recovery window, so a fixed name
        # would block re-creating a dev stack. Functions get the ARN (a valid SecretId), never the value.
        self.secrets: dict[str, secretsmanager.Secret] = {}
        for provider in sorted(C.PROVIDER_SECRETS):
            secret = secretsmanager.Secret(
                self, f"{provider.title()}ApiKey",
                description=f"stepcrew {config.stage}: {provider} API key (the bare key, or JSON with api_key)",
                # An empty placeholder, not a secret: the real key is put in out of band and never in the template.
                secret_object_value={"api_key": SecretValue.unsafe_plain_text("")},
                removal_policy=config.removal_policy,
            )
            acknowledge(secret, "AwsSolutions-SMG4",
                        f"The {provider} API key is issued by {provider}, not AWS: it is rotated at the provider and "
                        "then put here; a rotation Lambda cannot mint a new third-party key.")
            self.secrets[provider] = secret
