"""The ordered decoder pool: input order, one decoder in the calling process, dead workers, errors, early stops."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time

import pytest

from video3dcnn import pool
from video3dcnn.processing import WorkerDiedError, ordered_map


def kill_child_process(item: int) -> int:
    """From item 3 on, a task that kills the child process running it, like the kernel's OOM killer would."""
    if item >= 3 and multiprocessing.parent_process() is not None:
        os.kill(os.getpid(), signal.SIGKILL)
    return item * 10


def slower_first(item: int) -> int:
    time.sleep(0.002 * (20 - item))  # earlier items finish later: results arrive out of order
    return -item


def where(item: int) -> tuple[int, str]:
    time.sleep(0.01)  # long enough that every decoder takes some of the tasks
    return os.getpid(), threading.current_thread().name


def fail_on_two(item: int) -> int:
    if item == 2:
        raise ValueError(f"bad item {item}")
    return item


class Unpicklable(Exception):
    def __init__(self, handle: object) -> None:
        super().__init__("cannot cross a pipe")
        self.handle = handle


def raise_unpicklable(item: int) -> int:
    raise Unpicklable(threading.Lock())


def test_a_killed_worker_stops_the_run_instead_of_hanging() -> None:
    assert list(ordered_map(kill_child_process, range(3), workers=2)) == [0, 10, 20]
    with pytest.raises(WorkerDiedError, match="decoding process died"):
        list(ordered_map(kill_child_process, range(12), workers=2))


def test_results_come_back_in_input_order() -> None:
    assert list(ordered_map(abs, range(-40, 0), workers=2)) == list(range(40, 0, -1))
    assert list(ordered_map(slower_first, range(20), workers=3)) == [-i for i in range(20)]


def test_one_decoder_is_a_thread_of_this_process_up_to_the_limit(monkeypatch) -> None:
    placed = list(ordered_map(where, range(24), workers=3))
    pids = {pid for pid, _ in placed}
    assert (os.getpid(), "decoder") in placed  # the calling process decodes too: 2 children, not 3
    assert len(pids) == 3
    monkeypatch.setattr(pool, "LOCAL_DECODER_MAX", 2)
    placed = list(ordered_map(where, range(24), workers=3))
    assert os.getpid() not in {pid for pid, _ in placed}
    assert len({pid for pid, _ in placed}) == 3


def test_one_worker_runs_in_the_calling_thread() -> None:
    assert set(ordered_map(where, range(3), workers=1)) == {(os.getpid(), threading.current_thread().name)}


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_an_exception_of_the_function_reaches_the_caller_in_order(workers) -> None:
    results = ordered_map(fail_on_two, range(10), workers=workers)
    assert [next(results), next(results)] == [0, 1]
    with pytest.raises(ValueError, match="bad item 2"):
        next(results)


def test_an_exception_that_cannot_be_pickled_still_arrives() -> None:
    with pytest.raises((Unpicklable, RuntimeError), match="cannot cross a pipe"):
        list(ordered_map(raise_unpicklable, range(6), workers=3))


def test_stopping_early_stops_the_decoders() -> None:
    before = {child.pid for child in multiprocessing.active_children()}
    results = ordered_map(where, range(100), workers=3)
    next(results)
    results.close()  # as contextlib.closing does when the caller fails: waits for the current tasks only
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and {child.pid for child in multiprocessing.active_children()} - before:
        time.sleep(0.05)
    assert not {child.pid for child in multiprocessing.active_children()} - before
    assert not [thread for thread in threading.enumerate() if thread.name == "decoder"]


def big_or_fail(item: int) -> bytes:
    if item == 5:
        raise ValueError("bad item 5")
    if item > 5:  # still being decoded when the caller gets the error
        time.sleep(0.2)
    return bytes(300_000)  # larger than a pipe's buffer: a child blocks sending it until someone reads


def test_an_error_while_children_send_large_results_does_not_hang() -> None:
    outcome = []

    def run() -> None:
        try:
            list(ordered_map(big_or_fail, range(40), workers=3))
        except ValueError as exc:
            outcome.append(str(exc))

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(timeout=60)
    assert not runner.is_alive(), "ordered_map hung while stopping its decoders"
    assert outcome == ["bad item 5"]


def big(item: int) -> bytes:
    return bytes(300_000)


def test_an_interrupt_in_the_middle_of_a_reply_neither_hangs_nor_reads_the_cut_pipe(monkeypatch) -> None:
    """Ctrl-C or SIGTERM can land while a child's reply is half read: that pipe must not be read again (garbage, or
    a wait for bytes that never come); the decoders still stop."""
    from multiprocessing.connection import wait as wait_for

    def interrupted_receive(self):
        child = next(c for c in self.connections if not isinstance(c, pool._LocalDecoder))
        wait_for([child])  # a reply has started to arrive...
        os.read(child.fileno(), 2)  # ...and the read stops inside its length header
        raise KeyboardInterrupt

    monkeypatch.setattr(pool._Decoders, "receive", interrupted_receive)
    outcome = []

    def run() -> None:
        try:
            list(ordered_map(big, range(40), workers=3))
        except BaseException as exc:  # noqa: BLE001 - what reaches the caller is the point
            outcome.append(type(exc).__name__)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(timeout=60)
    assert not runner.is_alive(), "ordered_map hung on a pipe cut in the middle of a message"
    assert outcome == ["KeyboardInterrupt"]
    assert not multiprocessing.active_children()
