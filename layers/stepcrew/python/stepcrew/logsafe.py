"""Structured log fields that may hold user data, masked with Powertools' data masking before they are logged.

Logs carry keys and ids, never prompts, outputs or PII; some ids are chosen by users, though: a tenant id may be an
e-mail address (``TENANT_PATTERN`` allows ``@``). :func:`log_fields` masks the local part of such values
(``alice@example.com`` -> ``***@example.com``) with ``aws_lambda_powertools.utilities.data_masking.DataMasking.erase``
(imported on first need: ~65 ms). Fields listed in :data:`USER_DATA_FIELDS` only; every other field passes as given.
"""

from __future__ import annotations

from typing import Any

#: Field name -> (regex of the part to mask, mask): the fields of log records that may hold user data.
USER_DATA_FIELDS: dict[str, tuple[str, str]] = {
    "tenant": (r"[^@]+(?=@)", "***"),
}

_masker: Any = None


def log_fields(**fields: Any) -> dict[str, Any]:
    """``fields`` for a logger's ``extra=``, with the user-data fields masked (see the module docstring)."""
    present = [k for k, (_, _) in USER_DATA_FIELDS.items() if isinstance(fields.get(k), str) and "@" in fields[k]]
    if not present:
        return fields
    global _masker
    if _masker is None:
        from aws_lambda_powertools.utilities.data_masking import DataMasking

        _masker = DataMasking()
    for key in present:
        pattern, mask = USER_DATA_FIELDS[key]
        fields = _masker.erase(fields, fields=[key], regex_pattern=pattern, mask_format=mask)
    return fields
