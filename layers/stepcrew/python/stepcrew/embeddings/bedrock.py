"""Amazon Bedrock embeddings: Amazon Titan Text Embeddings V2 (``amazon.titan-embed-text-v2:0``) via ``InvokeModel``.

Request/response (Bedrock user guide, "Amazon Titan Embeddings Text" model parameters page,
https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html): one text per call,
body ``{"inputText": str, "dimensions": 256 | 512 | 1024, "normalize": true}``; the response body is JSON with
``embedding`` (list of floats), ``inputTextTokenCount`` and ``embeddingsByType``. Input limit 8,192 tokens / 50,000
characters (the port truncates at 8,000 characters first). Embedding models are throttled per requests per minute.

The boto3 client is built lazily, once per adapter, with ``retries={"total_max_attempts": 1, "mode": "standard"}``:
botocore makes exactly one attempt (its client-config ``max_attempts`` counts *retries*, so ``max_attempts: 1``
would still retry once -- ``botocore/args.py`` ``_compute_retry_max_attempts``); the state machine's Retry is the one
retry layer. Before building a real client the adapter calls :func:`stepcrew.llm.base.check_allow_model_requests`
(so under pytest a real client is refused with ``ModelRequestsForbiddenError``); an injected client is used as is.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from stepcrew.embeddings.base import (
    Embeddings,
    EmbeddingsRequestError,
    EmbeddingsUnavailableError,
    check_texts,
    l2_normalise,
)

TITAN_V2 = "amazon.titan-embed-text-v2:0"
#: Output sizes Titan Text Embeddings V2 accepts.
TITAN_V2_DIMS = (256, 512, 1024)
#: InvokeModel error codes (bedrock-runtime service model) that mean "not now": the state machine retries them.
UNAVAILABLE_CODES = frozenset({"ThrottlingException", "ServiceQuotaExceededException", "ServiceUnavailableException",
                               "InternalServerException", "ModelNotReadyException", "ModelTimeoutException",
                               "ModelErrorException"})
CONNECT_TIMEOUT_S = 10


class BedrockEmbeddings(Embeddings):
    """Titan Text Embeddings V2 vectors. ``name``: ``"bedrock:<model>:<dim>"``.

    ``model``: Bedrock model id (default :data:`TITAN_V2`). ``dim``: 256 (default), 512 or 1024, else ``ValueError``.
    ``client``: a ``bedrock-runtime`` client to use as is (tests pass one wrapped in a botocore ``Stubber``).
    ``region_name``: None -> boto3's default chain. ``timeout_s``: read timeout of the built client, seconds.
    One ``invoke_model`` call per text, sequentially (Titan takes one ``inputText`` per call).

    Errors: :class:`EmbeddingsUnavailableError` for throttling, 5xx / :data:`UNAVAILABLE_CODES`, connection or read
    timeouts, missing credentials and malformed responses; :class:`EmbeddingsRequestError` for other 4xx
    (``AccessDeniedException``, ``ValidationException``, ``ResourceNotFoundException``);
    ``stepcrew.llm.base.ModelRequestsForbiddenError`` when real requests are switched off and no client was injected.
    """

    def __init__(self, model: str = TITAN_V2, dim: int = 256, *, client: Any = None, region_name: str | None = None,
                 timeout_s: float = 30.0):
        if dim not in TITAN_V2_DIMS:
            raise ValueError(f"Titan Text Embeddings V2 dimensions must be one of {TITAN_V2_DIMS}, not {dim}")
        self.model = model
        self.dim = dim
        self.name = f"bedrock:{model}:{dim}"
        self._client = client
        self._region_name = region_name
        self._timeout_s = timeout_s
        self._lock = threading.Lock()

    def _get_client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    from stepcrew.llm.base import check_allow_model_requests

                    check_allow_model_requests()
                    import boto3  # lazy: ~0.4 s with a client
                    from botocore.config import Config

                    config = Config(retries={"total_max_attempts": 1, "mode": "standard"},
                                    read_timeout=self._timeout_s, connect_timeout=CONNECT_TIMEOUT_S)
                    self._client = boto3.client("bedrock-runtime", region_name=self._region_name, config=config)
        return self._client

    def embed(self, texts: list[str]) -> list[list[float]]:
        """See :meth:`Embeddings.embed` and the class docstring for errors. Titan's vectors come back normalised;
        they are re-normalised in float64 so the unit norm holds exactly up to rounding."""
        checked = check_texts(texts)
        if not checked:
            return []
        client = self._get_client()
        return [self._embed_one(client, text) for text in checked]

    def _embed_one(self, client: Any, text: str) -> list[float]:
        from botocore.exceptions import BotoCoreError, ClientError

        body = json.dumps({"inputText": text, "dimensions": self.dim, "normalize": True})
        try:
            answer = client.invoke_model(modelId=self.model, body=body, contentType="application/json",
                                         accept="application/json")
            payload = json.loads(answer["body"].read())
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            message = f"bedrock {self.model}: {code or 'error'} (HTTP {status or '?'})"
            if code in UNAVAILABLE_CODES or status == 429 or status >= 500:
                raise EmbeddingsUnavailableError(message) from exc
            raise EmbeddingsRequestError(message) from exc
        except BotoCoreError as exc:  # endpoint/connection/read timeout, missing credentials
            raise EmbeddingsUnavailableError(f"bedrock unreachable ({type(exc).__name__})") from exc
        except ValueError as exc:  # the body is not JSON
            raise EmbeddingsUnavailableError(f"bedrock {self.model}: response body is not JSON") from exc
        vector = payload.get("embedding") if isinstance(payload, dict) else None
        if not isinstance(vector, list) or len(vector) != self.dim:
            got = len(vector) if isinstance(vector, list) else type(vector).__name__
            raise EmbeddingsUnavailableError(
                f"bedrock {self.model}: expected an 'embedding' of {self.dim} floats, got {got}")
        try:
            return l2_normalise(vector)
        except (TypeError, ValueError) as exc:
            raise EmbeddingsUnavailableError(f"bedrock {self.model}: unusable embedding ({exc})") from exc
