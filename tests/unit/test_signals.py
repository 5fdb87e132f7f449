"""A signal handler set for one block: in force inside it, the previous one back after it, however it ends."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from video3dcnn.signals import Stopped, StopRequest, handling_signal


class _Stopped(Exception):
    pass


def _stop(signum: int, frame: object) -> None:
    raise _Stopped(signal.Signals(signum).name)


def test_the_handler_holds_inside_the_block_and_the_previous_one_comes_back() -> None:
    before = signal.getsignal(signal.SIGUSR1)
    with pytest.raises(_Stopped, match="SIGUSR1"):
        with handling_signal(signal.SIGUSR1, _stop):
            assert signal.getsignal(signal.SIGUSR1) is _stop
            os.kill(os.getpid(), signal.SIGUSR1)
    assert signal.getsignal(signal.SIGUSR1) is before


def test_blocks_nest_and_each_restores_what_it_replaced() -> None:
    before = signal.getsignal(signal.SIGUSR1)
    with handling_signal(signal.SIGUSR1, _stop):
        with handling_signal(signal.SIGUSR1, signal.SIG_IGN):
            os.kill(os.getpid(), signal.SIGUSR1)  # ignored: nothing raised
        assert signal.getsignal(signal.SIGUSR1) is _stop
    assert signal.getsignal(signal.SIGUSR1) is before


def test_outside_the_main_thread_nothing_changes() -> None:
    """Only the main thread may set handlers; a worker thread's block runs with the handlers as they are."""
    before, seen, errors = signal.getsignal(signal.SIGUSR1), [], []

    def worker() -> None:
        try:
            with handling_signal(signal.SIGUSR1, _stop):
                seen.append(signal.getsignal(signal.SIGUSR1))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert errors == [] and seen == [before]


def test_a_stop_request_interrupts_at_once_outside_a_deferring_block() -> None:
    request = StopRequest()
    with pytest.raises(Stopped, match="^stopped by SIGTERM .*; nothing was in progress") as caught:
        with handling_signal(signal.SIGTERM, request):
            os.kill(os.getpid(), signal.SIGTERM)
    assert caught.value.signum == signal.SIGTERM and isinstance(caught.value, KeyboardInterrupt)


def test_inside_a_deferring_block_a_stop_is_only_recorded_once() -> None:
    request = StopRequest()
    with handling_signal(signal.SIGTERM, request), request.deferring():
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)  # a second stop changes nothing
        assert request.requested and request.signum == signal.SIGTERM
    reason = str(request.stopped("saved checkpoint x"))
    assert reason.startswith("stopped by SIGTERM") and reason.endswith("; saved checkpoint x") and "\n" not in reason
    with pytest.raises(Stopped):  # a stop that came earlier ends the next deferring block before it starts
        with request.deferring():
            pass
