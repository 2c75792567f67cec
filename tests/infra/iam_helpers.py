"""IAM helpers of the template tests (a uniquely named module: ``conftest`` names clash across folders)."""

from __future__ import annotations

import fnmatch
from typing import Any


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def identity_statements(synth) -> list[tuple[str, dict[str, Any]]]:
    """(role logical id, statement) of every identity policy in the template: inline role policies and
    AWS::IAM::Policy resources (one entry per role they attach to). Fails on a managed policy (none is used)."""
    out = []
    for role_id, role in synth.of_type("AWS::IAM::Role").items():
        assert not role["Properties"].get("ManagedPolicyArns"), role_id
        out += [(role_id, st) for p in role["Properties"].get("Policies", []) for st in p["PolicyDocument"]["Statement"]]
    for policy in synth.of_type("AWS::IAM::Policy").values():
        for role in policy["Properties"]["Roles"]:
            out += [(role["Ref"], st) for st in policy["Properties"]["PolicyDocument"]["Statement"]]
    return out


def allows(statement: dict[str, Any], action: str) -> bool:
    """Whether ``statement`` allows ``action`` (its Action patterns matched like IAM's, case-insensitively)."""
    return statement["Effect"] == "Allow" and any(
        fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in as_list(statement.get("Action", [])))
