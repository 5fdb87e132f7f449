"""A signal handler set for one block: in force inside it, the previous one back after it, however it ends."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from video3dcnn.signals import handling_signal


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
