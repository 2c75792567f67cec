# Copied from ../shared/bench/prompt-workload/workload.py (the reference workload shared by the framework
# comparisons; its README.md gives the method and the LangGraph / CrewAI figures). Every string below is VERBATIM:
# do not edit them, or the comparison against LangGraph 1,543 / CrewAI 2,110 prompt tokens no longer holds.
# Only this header was added.
"""Reference workload shared by every framework benchmark (no framework imports).

Flow (8 LLM calls):
  1 planner   -> plan with 2 sub-tasks
  2 analyst   -> tool call query_dataset      } fan-out: the two workers
  3 analyst   -> answer                        } run in parallel, each one
  4 writer    -> tool call calculator          } tool call, then an answer
  5 writer    -> draft report                  }
  6 reviewer  -> score 6/10 + one improvement
  7 writer    -> revised report   (the single improvement round = loop edge)
  8 reviewer  -> score 9/10, approved -> final answer = revised report
Both workers get both tools; planner and reviewer get none.
"""
import json

TASK = "Analyze monthly sales of 3 product lines and recommend one action."

# role: one sentence (written without a final period so "You are {role}." reads well)
ROLES = {
    "planner": dict(
        role="a senior planner who splits business questions into clear sub-tasks",
        goal="Produce a plan of exactly two sub-tasks that together answer the question.",
        backstory="You have run analytics projects at retail companies for ten years. "
        "You are known for plans that are short, concrete and easy to delegate.",
    ),
    "analyst": dict(
        role="a data analyst who answers questions with numbers from the sales dataset",
        goal="Extract the monthly sales figures needed for the plan and summarize the trend of each line.",
        backstory="You are fluent in SQL and careful with numbers. "
        "You always query the data before you state a figure.",
    ),
    "writer": dict(
        role="a report writer who turns analysis into a concise business recommendation",
        goal="Write a short report that recommends exactly one action backed by numbers.",
        backstory="You have written executive briefs for sales leadership for years. "
        "You keep reports brief and you check arithmetic before you publish.",
    ),
    "reviewer": dict(
        role="a reviewer who checks reports for correctness and clarity",
        goal="Score the report from 1 to 10 and name the single most important improvement.",
        backstory="You were a finance controller before you moved into strategy. "
        "You reject any claim that is not supported by data.",
    ),
}

# Step instructions (task description + expected output), used verbatim by both frameworks.
STEPS = {
    "plan": dict(
        description=TASK + " Split this task into exactly two sub-tasks: one for the data analyst and one for the report writer.",
        expected="Two numbered sub-tasks, one line each.",
    ),
    "analyze": dict(  # CrewAI: static task text + plan as context; LangGraph: sub-task 1 via Send
        description="Carry out sub-task 1 of the plan (the data analyst's sub-task).",
        expected="The monthly figures and the trend of each product line in one or two sentences.",
    ),
    "write": dict(
        description="Carry out sub-task 2 of the plan (the report writer's sub-task).",
        expected="A report of at most three sentences that recommends exactly one action.",
    ),
    "review": dict(
        description="Review the report against the analysis.",
        expected="A score from 1 to 10 and the single most important improvement.",
    ),
    "improve": dict(
        description="Revise the report to address the reviewer's feedback.",
        expected="The revised report, at most three sentences.",
    ),
}

TOOLS = {
    "calculator": dict(
        description="Evaluate an arithmetic expression and return the result.",
        arg="expression", output="58.33",
    ),
    "query_dataset": dict(
        description="Run a SQL query against the monthly sales dataset and return the rows.",
        arg="sql", output="A: Jan 120, Feb 130, Mar 150; B: Jan 90, Feb 85, Mar 80; C: Jan 60, Feb 75, Mar 95 (k$)",
    ),
}

# ---- scripted LLM outputs -------------------------------------------------
SUB1 = "Query the monthly sales of product lines A, B and C and describe the trend of each line."
SUB2 = "Calculate the growth of the fastest-growing product line and recommend one action."
PLAN = f"1. {SUB1}\n2. {SUB2}"
ANALYST_CALL = ("query_dataset", {"sql": "SELECT month, line, SUM(sales) FROM sales GROUP BY month, line"})
ANALYSIS = "Line A rose from 120k to 150k, line B fell from 90k to 80k and line C rose from 60k to 95k between January and March."
WRITER_CALL = ("calculator", {"expression": "(95 - 60) / 60 * 100"})
REPORT = "Line C grew 58.33% from January to March, the fastest of the three lines. Recommendation: move 10% of line B's marketing budget to line C."
REVIEW1 = "Score: 6/10. Improvement: mention that line B fell 11% so the budget shift is justified."
REVISED = "Line C grew 58.33% from January to March while line B fell 11%. Recommendation: move 10% of line B's marketing budget to line C."
REVIEW2 = "Score: 9/10. Approved."


def script(role: str, prompt_text: str):
    """Return ('tool', name, args) or ('text', str) for the next reply of `role`.

    Decided from the prompt content only, so it works whatever the call order
    (parallel workers) and whatever the framework's prompt template is.
    """
    if role == "planner":
        return ("text", PLAN)
    if role == "analyst":
        if TOOLS["query_dataset"]["output"] in prompt_text:
            return ("text", ANALYSIS)
        return ("tool",) + ANALYST_CALL
    if role == "writer":
        if REVIEW1 in prompt_text:
            return ("text", REVISED)
        if TOOLS["calculator"]["output"] in prompt_text:
            return ("text", REPORT)
        return ("tool",) + WRITER_CALL
    if role == "reviewer":
        return ("text", REVIEW2 if REVISED in prompt_text else REVIEW1)
    raise ValueError(role)


def role_of(system_text: str) -> str:
    for name, r in ROLES.items():
        if r["role"] in system_text:
            return name
    raise ValueError("unknown role in prompt: " + system_text[:200])


def supplied_strings():
    """Text the user wrote: role/goal/backstory, task and step instructions, tool descriptions."""
    out = [v for r in ROLES.values() for v in r.values()]
    out += [v for s in STEPS.values() for v in s.values()]
    out += [TASK] + [t["description"] for t in TOOLS.values()]
    return out


def carried_strings():
    """Content produced during the run (scripted LLM outputs, tool outputs, tool-call args)."""
    return [PLAN, SUB1, SUB2, ANALYSIS, REPORT, REVIEW1, REVISED, REVIEW2] + [
        t["output"] for t in TOOLS.values()
    ] + [json.dumps(ANALYST_CALL[1]), json.dumps(WRITER_CALL[1])]
