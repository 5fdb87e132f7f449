"""Progress: a bar on a terminal, a log line every interval (and one at the end) elsewhere."""

from __future__ import annotations

import io
import logging

import pytest

from video3dcnn.progress import Progress, _duration


def test_progress_logs_lines_when_not_on_a_terminal(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="video3dcnn.progress")
    with Progress(4, "videos", interval=0.0, stream=io.StringIO()) as progress:
        for _ in range(4):
            progress.update()
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0].startswith("1/4 videos (25%)") and "left" in lines[0]
    assert lines[-1].startswith("4/4 videos (100%) in ")


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_a_bar_on_a_terminal(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="video3dcnn.progress")
    stream = FakeTerminal()
    with Progress(2, "videos", interval=0.0, stream=stream) as progress:
        progress.update(2)
    assert "2/2" in stream.getvalue() and not caplog.records


def test_lines_come_no_more_often_than_the_interval(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="video3dcnn.progress")
    with Progress(100, "clips", interval=3600.0, stream=io.StringIO()) as progress:
        progress.update(60)
        progress.update(40)
    assert [record.getMessage().split(" in ")[0] for record in caplog.records] == ["100/100 clips (100%)"]


def test_the_line_reports_share_rate_and_time_left() -> None:
    progress = Progress(0, "videos", stream=io.StringIO())
    assert progress.line().startswith("0/0 videos (100%), 0.00/s, 0m00s left")
    progress = Progress(10, "videos", stream=io.StringIO())
    progress.update(5)
    assert progress.line().startswith("5/10 videos (50%), ")


@pytest.mark.parametrize(("seconds", "text"), [(0, "0m00s"), (59.9, "0m59s"), (61, "1m01s"), (3 * 3600 + 62, "3h01m02s")])
def test_durations(seconds: float, text: str) -> None:
    assert _duration(seconds) == text
