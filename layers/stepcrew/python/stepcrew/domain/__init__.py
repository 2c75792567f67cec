"""The role functions, one module per Lambda role: each is a plain function of its event model and the store.

:mod:`.guard` (input guard, scheduled run records), :mod:`.planner`, :mod:`.approval`, :mod:`.agent` (one agent-loop
turn of a worker), :mod:`.synthesizer`, :mod:`.reviewer`, :mod:`.finalize`; shared: :mod:`.modelcall` (model call,
usage, budget), :mod:`.prompts`, :mod:`.context` (structured facts for the rule engine), :mod:`.common`,
:mod:`.numbers`, :mod:`.errors`.
"""
