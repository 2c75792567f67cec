"""Resilience of runs: limits and budgets that keep one tenant or one failure from taking everything down."""
