"""infra/schedules.yaml and its pydantic model (no synth needed)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from stepcrew_infra import constants as C
from stepcrew_infra.schedules import DATASETS_BUCKET_PLACEHOLDER, ScheduleConfig, ScheduleFile, example_input

pytestmark = pytest.mark.infra

GOOD = {"name": "nightly", "schedule": "rate(1 day)", "goal": "Summarise the data", "crew": "default",
        "inputs": {"k": "v"}, "tenant": "acme"}


def test_shipped_file_is_valid_and_has_an_example():
    schedules = ScheduleFile.load(C.SCHEDULES_FILE).schedules
    assert schedules and schedules[0].request.goal
    assert '"source": "schedule"' in example_input()


def test_target_input_is_the_request_and_the_source():
    entry = ScheduleConfig.model_validate({**GOOD, "data": f"s3://{DATASETS_BUCKET_PLACEHOLDER}/x.csv"})
    body = entry.target_input("my-bucket")
    assert body["source"] == "schedule"
    assert body["request"]["goal"] == "Summarise the data"
    assert body["request"]["tenant"] == "acme" and body["request"]["inputs"] == {"k": "v"}
    assert body["request"]["data"] == "s3://my-bucket/x.csv"
    assert entry.timezone == "UTC" and entry.enabled is True


@pytest.mark.parametrize("change", [
    {"schedule": "every day"},
    {"schedule": "cron(0 7 * * *)"},           # 5 fields: Scheduler cron has 6
    {"schedule": "rate(0 days)"},
    {"timezone": "Mars/Olympus"},
    {"name": "has space"},
    {"name": "x" * 39},                        # stepcrew-<stage>-<name> must fit 64 characters
    {"goal": ""},                              # RunRequest validation
    {"colour": "blue"},                        # unknown RunRequest field
    {"data": "http://example.com/x.csv"},
])
def test_bad_entries_are_rejected(change):
    with pytest.raises(ValidationError):
        ScheduleConfig.model_validate({**GOOD, **change})


def test_cron_with_six_fields_and_a_zone_is_accepted():
    entry = ScheduleConfig.model_validate({**GOOD, "schedule": "cron(0 7 ? * MON *)", "timezone": "Europe/Berlin"})
    assert entry.schedule == "cron(0 7 ? * MON *)"


def test_duplicate_names_and_unknown_top_level_keys_are_rejected(tmp_path):
    with pytest.raises(ValidationError, match="duplicate"):
        ScheduleFile.model_validate({"schedules": [GOOD, GOOD]})
    with pytest.raises(ValidationError):
        ScheduleFile.model_validate({"schedules": [], "extra": 1})
    missing = ScheduleFile.load(tmp_path / "none.yaml")
    assert missing.schedules == []
