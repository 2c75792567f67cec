"""Guards: PII, prompt-injection and denied-topic screening behind one port (:mod:`stepcrew.guards.base`).

Backends: :mod:`stepcrew.guards.local` (Presidio's pattern recognizers on a no-op NLP engine, completed by
stepcrew's own recognizers, and the rule-based injection detector of :mod:`stepcrew.guards.injection`; offline, the
default) and :mod:`stepcrew.guards.bedrock` (Amazon Bedrock Guardrails' ``ApplyGuardrail``). Both import their
heavy SDKs lazily; only the guard Lambda builds one.
"""
