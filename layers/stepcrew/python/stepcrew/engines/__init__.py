"""Engines: how the roles' work gets done (see :mod:`stepcrew.engines.base`). The LLM engine
(:mod:`stepcrew.engines.llm`) and the offline rule engine (:mod:`stepcrew.engines.rules`) implement one port."""
