"""The tenant memory's vector index: nothing (``memory_index=exact``, the default) or an Amazon S3 Vectors bucket with
one index per memory kind (``memory_index=s3vectors``), and what each function gets for it.

``exact`` (:class:`stepcrew.memory.index.ExactIndex`): vectors live in the run table's memory items and are compared
in the function; no resource, no permission beyond the table. Every ``vector_index`` function gets
``STEPCREW_MEMORY_INDEX=exact``.

``s3vectors`` (:class:`stepcrew.memory.s3vectors.S3VectorsIndex`; why S3 Vectors and not OpenSearch Serverless: that
module's docstring):

- ``AWS::S3Vectors::VectorBucket`` named ``stepcrew-<stage>-memory`` (vector bucket names: 3-63 characters of a-z,
  0-9 and ``-``, unique per account and Region; AWS "Vector bucket naming rules"), encrypted with SSE-S3 (``AES256``,
  no KMS key policy involved).
- Two ``AWS::S3Vectors::Index``, named by :data:`stepcrew.memory.s3vectors.INDEX_NAMES` (the adapter's own constant,
  so the two cannot drift): ``float32``, distance metric ``cosine``, dimension :data:`constants.EMBEDDINGS_DIM` (the
  dimension the functions embed with, ``STEPCREW_EMBEDDINGS_DIM``). The adapter's metadata keys ``tenant`` and
  ``user`` stay filterable: S3 Vectors makes every metadata key filterable unless the index lists it as
  non-filterable, and no key is listed. Name, dimension, metric and non-filterable keys cannot change after creation
  (AWS "Vector indexes"): a change replaces the index (and loses its vectors; DynamoDB keeps the items).
- Removal: the stage's removal policy (retained in prod; the vectors are derived from the run table's items).
- Every ``vector_index`` function gets ``STEPCREW_MEMORY_INDEX=s3vectors``, ``STEPCREW_MEMORY_VECTOR_BUCKET`` and one
  statement ``MemoryVectorIndex`` with :data:`constants.VECTOR_INDEX_ACTIONS` for its mode (``read``, ``write``,
  ``delete``) on the two index ARNs (``arn:<partition>:s3vectors:<region>:<account>:bucket/<bucket>/index/<index>``,
  AWS "Vector indexes"; the resource the vector actions are authorized on): no wildcard, no bucket-level action.
"""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3vectors as s3vectors
from constructs import Construct
from stepcrew.memory.s3vectors import INDEX_NAMES
from stepcrew.wiring import FunctionSpec

from stepcrew_infra import constants as C
from stepcrew_infra.config import StageConfig
from stepcrew_infra.functions import FunctionExtras

#: The index configuration the adapter relies on (S3 Vectors supports ``float32`` only; cosine = the adapter's
#: ``similarity = 1 - distance``).
DATA_TYPE = "float32"
DISTANCE_METRIC = "cosine"


class MemoryIndex(Construct):
    """``mode`` (``exact`` | ``s3vectors``); with ``s3vectors``: ``bucket`` (CfnVectorBucket), ``bucket_name`` and
    ``indexes`` (memory kind -> CfnIndex); otherwise None / {}. :meth:`extras_for` is what a function gets."""

    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig) -> None:
        super().__init__(scope, construct_id)
        self.mode = config.memory_index
        self.bucket: s3vectors.CfnVectorBucket | None = None
        self.bucket_name: str | None = None
        self.indexes: dict[str, s3vectors.CfnIndex] = {}
        if self.mode != "s3vectors":
            return
        self.bucket_name = config.resource_name("memory")
        self.bucket = s3vectors.CfnVectorBucket(
            self, "VectorBucket", vector_bucket_name=self.bucket_name,
            encryption_configuration=s3vectors.CfnVectorBucket.EncryptionConfigurationProperty(sse_type="AES256"))
        self.bucket.apply_removal_policy(config.removal_policy)
        for kind, index_name in sorted(INDEX_NAMES.items()):
            index = s3vectors.CfnIndex(
                self, f"{kind.title()}Index", index_name=index_name,
                vector_bucket_arn=self.bucket.attr_vector_bucket_arn,
                data_type=DATA_TYPE, dimension=C.EMBEDDINGS_DIM, distance_metric=DISTANCE_METRIC)
            index.apply_removal_policy(config.removal_policy)
            self.indexes[kind] = index

    @property
    def index_arns(self) -> list[str]:
        """The indexes' ARNs (tokens), by kind."""
        return [self.indexes[kind].attr_index_arn for kind in sorted(self.indexes)]

    def extras_for(self, spec: FunctionSpec) -> FunctionExtras | None:
        """What ``spec``'s function gets for the memory index (module docstring); None when its spec has no
        ``vector_index``."""
        if not spec.vector_index:
            return None
        environment = {C.MEMORY_INDEX_ENV: self.mode}
        statements: list[iam.PolicyStatement] = []
        if self.mode == "s3vectors":
            environment[C.MEMORY_VECTOR_BUCKET_ENV] = self.bucket_name
            statements.append(iam.PolicyStatement(
                sid="MemoryVectorIndex", actions=list(C.VECTOR_INDEX_ACTIONS[spec.vector_index]),
                resources=self.index_arns))
        return FunctionExtras(environment=environment, statements=statements)
