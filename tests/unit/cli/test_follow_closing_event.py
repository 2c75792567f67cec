"""`follow` prints a run's closing event even when it lands just after the terminal status (the finalizers write the
status first, then the event): seen once in CI, where the progress ended without "run SUCCEEDED"."""
import io
import time

from rich.console import Console

from stepcrew.cli import CLOSING_EVENT_GRACE_S, Progress, follow
from stepcrew.models import ProgressEvent

RUN = "r-follow-closing"


class LateEventStore:
    """Lists the run's events; the closing event appears only ``late_polls`` listings after the status is terminal."""

    def __init__(self, late_polls: int | None) -> None:
        self.events = [ProgressEvent(run_id=RUN, kind="run_started")]
        self.late_polls = late_polls
        self.listings_after_done = 0

    def list_events(self, run_id, after=None):
        assert run_id == RUN
        self.listings_after_done += 1
        if self.late_polls is not None and self.listings_after_done > self.late_polls and len(self.events) == 1:
            self.events.append(ProgressEvent(run_id=RUN, kind="run_succeeded",
                                             data={"input_tokens": 1, "output_tokens": 1, "cost_usd": 0.0}))
        start = 0 if after is None else after + 1
        return [(i, e) for i, e in enumerate(self.events) if i >= start]


def run_follow(store):
    buf = io.StringIO()
    started = time.monotonic()
    finished = follow(store, RUN, lambda: True, Progress(Console(file=buf, width=200, force_terminal=False)), 30,
                      poll_s=0.01)
    return finished, buf.getvalue(), time.monotonic() - started


def test_a_closing_event_written_after_the_status_is_still_shown():
    finished, text, _ = run_follow(LateEventStore(late_polls=3))
    assert finished
    assert "run SUCCEEDED" in text and text.count("run SUCCEEDED") == 1


def test_a_closing_event_never_written_ends_the_follow_after_the_grace():
    finished, text, took = run_follow(LateEventStore(late_polls=None))
    assert finished and "run SUCCEEDED" not in text
    assert took >= CLOSING_EVENT_GRACE_S


def test_a_closing_event_already_there_ends_the_follow_at_once():
    store = LateEventStore(late_polls=0)
    finished, text, _ = run_follow(store)
    assert finished and "run SUCCEEDED" in text
    assert store.listings_after_done == 1
