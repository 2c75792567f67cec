"""`stepcrew runs redrive` bad input: one line, exit 2, nothing written (the use case: tests/unit/domain/test_redrive)."""

from __future__ import annotations

import pytest
from test_cli import stepcrew

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("args, words", [
    (("runs", "redrive", "some-run"), "stepcrew runs resume"),  # a local run: resume, not redrive
    (("runs", "redrive", "some-run", "--aws"), "STEPCREW_TABLE_NAME"),  # no stack configured
])
def test_redrive_bad_input_is_one_line_exit_2(tmp_path, monkeypatch, args, words):
    monkeypatch.delenv("STEPCREW_TABLE_NAME", raising=False)
    monkeypatch.delenv("STEPCREW_RUN_STATE_MACHINE_ARN", raising=False)
    proc = stepcrew(tmp_path, *args)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "state").exists()
