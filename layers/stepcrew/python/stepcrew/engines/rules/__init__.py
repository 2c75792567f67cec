"""The offline rule engine (no LLM): see :mod:`stepcrew.engines.rules.engine`."""

from stepcrew.engines.rules.engine import RuleEngine

__all__ = ["RuleEngine"]
