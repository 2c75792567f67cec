"""Stateful resources: the run table, the datasets bucket (and its access-log bucket), the provider key secrets.

The table follows :mod:`stepcrew.store.schema` (the same constants the DynamoDB adapter and the local runtime
use): string keys ``PK``/``SK``, GSI ``GSI1`` on ``GSI1PK``/``GSI1SK`` projecting all attributes (lists a
tenant's runs by time), TTL on ``expires_at`` (epoch seconds), on-demand billing, point-in-time recovery,
encryption with the AWS managed key. Prod stages retain the table (and deletion protection is on); other stages
delete it with the stack. Both buckets are always retained (a stack deletion must not fail on, or silently
delete, uploaded datasets and access logs; empty and delete them by hand).

Datasets are read through :class:`DatasetReader`, a role scoped per tenant by a session tag (ABAC): the functions that
read data assume it for the run's tenant and hold no S3 permission of their own. The bucket is encrypted with SSE-S3
(S3-managed keys), so no KMS key policy or ``kms:Decrypt`` grant is involved.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy, SecretValue, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct
from stepcrew.store import schema
from stepcrew.tools.datasets import READER_SESSION_S, TENANT_TAG

from stepcrew_infra import constants as C
from stepcrew_infra.config import StageConfig
from stepcrew_infra.nag import acknowledge

#: The policy variable of the tenant session tag: the reader role's only resource is ``<bucket>/<this>/*``.
TENANT_PRINCIPAL_TAG = f"${{aws:PrincipalTag/{TENANT_TAG}}}"


class DatasetReader(Construct):
    """The IAM role dataset reads run as, one session per tenant (attribute-based access control with session tags).

    - Permissions: ``s3:GetObject`` (which also authorizes ``HeadObject``) on ``<bucket>/${aws:PrincipalTag/tenant}/*``
      only. A session without the ``tenant`` tag cannot resolve the variable, so the statement matches nothing
      (IAM User Guide, "Policy variables with no value"): no tag, no read. No ``s3:ListBucket``: without it a missing
      key reads as 403 instead of 404, and the tools answer both alike ("not found or not readable").
    - Trust: only the roles given to :meth:`allow` (the ``reads_data`` functions), ``sts:AssumeRole`` and
      ``sts:TagSession``; tagging is allowed only with a non-empty ``tenant`` tag and no other tag key
      (``aws:RequestTag/tenant``, ``aws:TagKeys``; IAM User Guide, "Pass session tags in AWS STS").
    - ``MaxSessionDuration`` 3,600 s (role chaining caps sessions at one hour); the code asks for
      :data:`stepcrew.tools.datasets.READER_SESSION_S`.

    One role for every tenant rather than a role or a statement per tenant prefix: IAM caps roles per account (1,000 by
    default) and the inline policies of a role at 10,240 characters (IAM and AWS STS quotas), so per-tenant grants stop
    scaling at a few hundred tenants, and each new tenant would need a deploy.
    """

    ID = "DatasetReader"

    def __init__(self, scope: Construct, construct_id: str, *, bucket: s3.IBucket) -> None:
        super().__init__(scope, construct_id)
        self.bucket = bucket
        self.readers: list[iam.IRole] = []
        #: The one resource the role may read: the session's tenant prefix of the datasets bucket.
        self.resource = bucket.arn_for_objects(f"{TENANT_PRINCIPAL_TAG}/*")
        # The trust policy is resolved at synth, so the principals :meth:`allow` adds later are in it.
        self._assume = iam.PolicyStatement(sid="DataReadersAssume", actions=["sts:AssumeRole"])
        self._tag = iam.PolicyStatement(
            sid="TenantSessionTagOnly", actions=["sts:TagSession"],
            conditions={"StringLike": {f"aws:RequestTag/{TENANT_TAG}": "?*"},
                        "ForAllValues:StringEquals": {"aws:TagKeys": [TENANT_TAG]}})
        self.trust_policy = iam.PolicyDocument(statements=[self._assume, self._tag])
        self.role = iam.CfnRole(
            self, "Role", assume_role_policy_document=self.trust_policy,
            description="stepcrew dataset reads, one session per tenant: s3:GetObject on <bucket>/<tenant tag>/* only",
            max_session_duration=max(3600, READER_SESSION_S),
            policies=[iam.CfnRole.PolicyProperty(policy_name="ReadOwnTenantDatasets", policy_document={
                "Version": "2012-10-17",
                "Statement": [{"Sid": "ReadOwnTenantDatasets", "Effect": "Allow", "Action": "s3:GetObject",
                               "Resource": self.resource}]})])
        stack = Stack.of(self)
        bucket_id = stack.resolve(stack.get_logical_id(bucket.node.default_child))
        # cdk-nag writes the policy variable ${aws:PrincipalTag/tenant} as <aws:PrincipalTag/tenant>
        acknowledge(self.role, f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/<aws:PrincipalTag/{TENANT_TAG}>/*]",
                    "Objects under the session's own tenant prefix only: the wildcard is the file name a tenant "
                    "chooses, the prefix is the tenant session tag set by the data-reading functions (ABAC).")

    @property
    def role_arn(self) -> str:
        """The role's ARN (a token), what the data-reading functions get as ``STEPCREW_DATA_READER_ROLE_ARN``."""
        return self.role.attr_arn

    def allow(self, role: iam.IRole) -> None:
        """Let ``role`` assume this role, tagging the session with ``tenant`` only (its own policy must allow the
        two actions too). Call before synth: the trust policy (``trust_policy``) is resolved then."""
        self.readers.append(role)
        principal = iam.ArnPrincipal(role.role_arn)
        self._assume.add_principals(principal)
        self._tag.add_principals(principal)

    @classmethod
    def of(cls, bucket: s3.IBucket) -> DatasetReader:
        """The reader of ``bucket``: the one built beside it (``<bucket's scope>/DatasetReader``), else a new one."""
        scope = bucket.node.scope
        found = scope.node.try_find_child(cls.ID) if scope is not None else None
        if isinstance(found, DatasetReader):
            return found
        return cls(scope or Stack.of(bucket), cls.ID, bucket=bucket)


class Data(Construct):
    """``table``, ``datasets`` (bucket), ``dataset_reader`` (:class:`DatasetReader`), ``access_logs`` (bucket),
    ``secrets`` (provider -> secret)."""

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
        self.dataset_reader = DatasetReader(self, DatasetReader.ID, bucket=self.datasets)
        # Run artifacts (exports: stepcrew.tools.artifacts) in their own bucket, so no role that writes them can
        # touch a dataset: keys <tenant>/runs/<run_id>/<kind>/<name>.
        self.artifacts = s3.Bucket(
            self, "Artifacts", encryption=s3.BucketEncryption.S3_MANAGED, enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL, versioned=True,
            server_access_logs_bucket=self.access_logs, server_access_logs_prefix="artifacts/",
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
