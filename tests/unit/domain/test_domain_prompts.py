"""Prompts rendered from the crew's roles, and the one tolerant JSON-reply parser."""

import pytest

from stepcrew.engines.facts import ActFacts, SubtaskFacts
from stepcrew.engines.prompts import JsonReplyError, act_prompt, parse_json_reply, system_prompt
from stepcrew.llm.spotlight import DATA_RULE


@pytest.mark.parametrize("text", [
    '{"a": 1}',
    '```json\n{"a": 1}\n```',
    'Sure! Here it is:\n```\n{"a": 1}\n```\nAnything else?',
    'The answer is {"a": 1} as requested.',
    '```json\n{"a": 1,}\n```\nfixed: {"a": 1}',
])
def test_json_replies_are_found_bare_fenced_or_after_prose(text):
    assert parse_json_reply(text) == {"a": 1}


@pytest.mark.parametrize(("text", "error"), [
    ("", "the reply is empty"),
    ("no json here", "no '{' found"),
    ('{"a": 1', "Expecting"),
    ("[1, 2]", "no '{' found"),
])
def test_replies_without_a_json_object_raise_one_line_errors(text, error):
    with pytest.raises(JsonReplyError, match=error) as err:
        parse_json_reply(text)
    assert "\n" not in str(err.value)


def test_a_role_written_with_its_article_reads_as_a_sentence():
    from stepcrew.models import AgentRole

    role = AgentRole(name="analyst", role="a data analyst who answers with numbers", goal="Find the trend.")
    assert system_prompt(role).startswith("You are a data analyst who answers with numbers. Your goal: Find")


def test_system_prompt_renders_every_part_of_the_role(crew):
    prompt = system_prompt(crew.worker("data_analyst"))
    role = crew.worker("data_analyst")
    assert prompt.startswith("You are the Data analyst. Your goal: ")
    assert prompt.endswith(DATA_RULE)  # the data rule is stable text: in the system prompt, the cached prefix
    assert role.goal in prompt and role.backstory in prompt and role.expertise[0] in prompt
    assert all(f"- {rule}" in prompt for rule in role.output_rules)


def test_worker_prompt_clips_long_dependency_outputs():
    dep = SubtaskFacts(id="profile", title="Profile", output="x" * 10_000)
    ctx = ActFacts(goal="g", has_dataset=True, dependencies=[dep],
                     subtask=SubtaskFacts(id="s", title="S", instructions="do it", expected_output="a table"))
    prompt = act_prompt(ctx, ["calculator"])
    assert "Expected output: a table" in prompt and "Use the tools for every figure" in prompt
    assert "[... truncated, 4000 more characters]" in prompt and len(prompt) < 7000


def test_dates_and_times_are_not_figures_but_signed_numbers_are():
    from stepcrew.engines.numbers import numbers_in_text

    text = "On 2024-03-01 at 12:30 (see 3/4) it was -3.5 degrees, 5,076.02 g and 344 birds."
    assert [v for _, v in numbers_in_text(text)] == [-3.5, 5076.02, 344]
