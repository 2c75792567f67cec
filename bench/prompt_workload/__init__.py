"""The reference prompt workload and its token accounting, ported from ``../shared/bench/prompt-workload/`` for
``bench/prompt_tokens.py`` (workload strings verbatim; see each module's header)."""
