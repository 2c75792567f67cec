"""The rule engine's manager (hierarchical / hybrid crews): deterministic delegation from the plan, no LLM.

- Every answer of last round (``SUCCEEDED``) is accepted; a failed delegation ends the manager's work with
  ``give_up`` naming the sub-task and its error (the rules cannot write feedback that would make a worker succeed, and
  a run that does not answer every sub-task is not a success).
- The next delegations are the *ready* sub-tasks (not accepted, every dependency accepted), in plan order:
  ``hierarchical`` delegates the first one (one at a time), ``hybrid`` all of them as one batch (they are independent:
  their dependencies are all done). Each goes to the sub-task's planned worker with the plan's instructions.
- ``done`` once every sub-task is accepted.
"""

from __future__ import annotations

from stepcrew.engines.base import Assessment, DelegationOrder, EngineCall, ManageReply
from stepcrew.engines.facts import ManageFacts
from stepcrew.llm.pricing import RULE_ENGINE_MODEL
from stepcrew.text import one_line


def manage(facts: ManageFacts) -> ManageReply:
    """One manager round by the rules above (zero tokens, one ``rule-engine`` call)."""
    calls = [EngineCall(model=RULE_ENGINE_MODEL)]
    failed = [r for r in facts.results if r.status != "SUCCEEDED"]
    if failed:
        r = failed[0]
        return ManageReply(give_up=one_line(f"sub-task {r.subtask_id} failed ({r.error or 'no reason given'}); the "
                                            "rule engine's manager does not send failed work back", 500),
                           calls=calls)
    assessments = [Assessment(subtask_id=r.subtask_id, verdict="accept") for r in facts.results]
    accepted = set(facts.accepted) | {r.subtask_id for r in facts.results}
    ready = [s for s in facts.subtasks if s.id not in accepted and set(s.depends_on) <= accepted]
    if not ready:
        return ManageReply(assessments=assessments, done=True, calls=calls)
    batch = ready[:1] if facts.process == "hierarchical" else ready
    default_worker = facts.workers[0].name if facts.workers else ""
    delegations = [DelegationOrder(subtask_id=s.id, worker=s.role or default_worker, instructions=s.instructions,
                                   tools=list(s.tools)) for s in batch]
    return ManageReply(assessments=assessments, delegations=delegations, calls=calls)
