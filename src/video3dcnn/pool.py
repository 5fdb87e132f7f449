"""An ordered map over decoder processes, one of them a thread of the calling process.

``ordered_map(function, items, workers)`` is ``map`` spread over ``workers`` decoders, results in input order, with
few results buffered. Why not ``concurrent.futures.ProcessPoolExecutor`` or ``multiprocessing.Pool``:

- The executor costs the parent about 0.15 ms of CPU per task (a manager thread, a queue feeder thread and a future
  per task); here the parent writes each task straight to a pipe of an idle decoder and reads the result back, about
  0.06 ms. Decoding a small video takes ~10 ms, and on a machine with as many decoders as cores every millisecond the
  parent spends is taken from a decoder.
- With up to ``LOCAL_DECODER_MAX`` workers, one decoder is a thread of the calling process (OpenCV and the deflater
  release the GIL while they work; its tasks and results are handed over as objects, not pickled), so
  ``--workers N`` keeps N cores busy instead of N + 1 processes sharing N cores, and decoding starts before the child
  processes are up. With more workers the parent has enough to do collecting results, and all decoders are
  processes.
- ``multiprocessing.Pool`` hangs forever when a worker is killed; here a dead decoder process ends the run with
  ``WorkerDiedError``.

Each decoder holds at most ``PREFETCH`` tasks, so it never waits for the parent between two tasks; at most
``WINDOW_PER_WORKER`` results per worker wait behind a slower, earlier one, so memory stays bounded.
"""

from __future__ import annotations

import collections
import multiprocessing
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection, wait
from typing import Any

from video3dcnn.errors import ToolkitError

LOCAL_DECODER_MAX = 8  # up to this many workers, one decoder runs in a thread of the calling process
PREFETCH = 2  # tasks handed to a decoder at a time: one running, one waiting
WINDOW_PER_WORKER = 4  # results buffered per worker while waiting for an earlier, slower one


class WorkerDiedError(ToolkitError):
    """A decoding process died (killed by the system); nothing of this run is listed in a manifest."""


def _call(function: Callable[[Any], Any], task: tuple[int, Any]) -> tuple[int, bool, Any]:
    """``(index, True, function(item))``, or ``(index, False, exception)``: raised again in the caller, as map would."""
    index, item = task
    try:
        return index, True, function(item)
    except Exception as exc:  # noqa: BLE001 - handed to the caller
        return index, False, exc


def _serve(connection: Connection, function: Callable[[Any], Any]) -> None:
    """A child process's loop: ``(index, item)`` in, ``(index, True, result)`` or ``(index, False, exception)`` out.

    Stops at ``None`` or when the parent's end of the pipe is gone; the connection is closed on the way out, so the
    parent sees a decoder that stopped for any other reason as a closed pipe.
    """
    try:
        while (task := connection.recv()) is not None:
            index, ok, value = reply = _call(function, task)
            try:
                connection.send(reply)  # pickled whole before anything is written
            except Exception as exc:  # noqa: BLE001 - a result or exception that cannot be pickled
                failure = exc if ok else value
                message = f"{type(failure).__name__}: {failure} (cannot be sent back: {exc})"
                connection.send((index, False, RuntimeError(message)))
    except (EOFError, OSError):  # the parent is gone or closed the pipe
        pass
    finally:
        connection.close()


class _LocalDecoder:
    """The decoder thread of the calling process, used like a child's pipe (``send``, ``recv``, ``fileno``, ``close``).

    Tasks and replies pass as objects, never pickled; the pipe carries one empty message per reply so that ``wait``
    wakes up for the thread as for the processes.
    """

    def __init__(self, function: Callable[[Any], Any]) -> None:
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._replies: collections.deque = collections.deque()
        self._reader, self._writer = multiprocessing.Pipe(duplex=False)
        self.thread = threading.Thread(target=self._run, args=(function,), name="decoder", daemon=True)
        self.thread.start()

    def _run(self, function: Callable[[Any], Any]) -> None:
        try:
            while (task := self._tasks.get()) is not None:
                self._replies.append(_call(function, task))
                self._writer.send_bytes(b"")
        except OSError:  # the caller has gone away (closed its end)
            pass
        finally:
            self._writer.close()

    def send(self, task: tuple[int, Any] | None) -> None:
        self._tasks.put(task)

    def recv(self) -> tuple[int, bool, Any]:
        self._reader.recv_bytes()  # EOFError when the thread has stopped
        return self._replies.popleft()

    def fileno(self) -> int:
        return self._reader.fileno()

    def close(self) -> None:
        self._reader.close()


def _process_main(
    connection: Connection, function: Callable[[Any], Any], initializer: Callable[[], None] | None
) -> None:
    if initializer is not None:
        initializer()
    _serve(connection, function)


class _Decoders:
    """The decoders of one ``ordered_map`` call and the tasks each of them holds."""

    def __init__(
        self, function: Callable[[Any], Any], workers: int, context: multiprocessing.context.BaseContext,
        initializer: Callable[[], None] | None,
    ) -> None:  # fmt: skip
        self.connections: list[Connection | _LocalDecoder] = []
        self.processes: dict[int, multiprocessing.process.BaseProcess] = {}  # by sentinel
        self.idle: collections.deque[Connection | _LocalDecoder] = collections.deque()
        local = 1 if workers <= LOCAL_DECODER_MAX else 0
        try:
            if local:
                self._add(_LocalDecoder(function))
            for _ in range(workers - local):
                parent, child = context.Pipe()
                process = context.Process(target=_process_main, args=(child, function, initializer), daemon=True)
                process.start()
                child.close()
                self.processes[process.sentinel] = process
                self._add(parent)
        except BaseException:  # e.g. no process can be started: stop the decoders already running
            self.close(wait_for_work=False)
            raise

    def _add(self, connection: Connection | _LocalDecoder) -> None:
        self.connections.append(connection)
        self.idle.extend([connection] * PREFETCH)

    def send(self, task: tuple[int, Any]) -> None:
        """Hand ``task`` to a decoder with room for it (``idle`` must not be empty)."""
        connection = self.idle.popleft()
        try:
            connection.send(task)
        except OSError:
            raise _died() from None

    def receive(self) -> list[tuple[int, bool, Any]]:
        """Wait for at least one reply; every reply ready by then."""
        replies = []
        ready = wait([*self.connections, *self.processes])
        for connection in self.connections:
            if connection in ready:
                try:
                    replies.append(connection.recv())
                except (EOFError, OSError):
                    raise _died() from None
                self.idle.append(connection)
        if not replies and any(sentinel in ready for sentinel in self.processes):
            raise _died()
        return replies

    def close(self, wait_for_work: bool) -> None:
        """Tell every decoder to stop and close the pipes; with ``wait_for_work``, then wait until each decoder has
        finished the task it is on.

        The pipes are closed before waiting: a child sending a result (its result is no longer wanted) then fails at
        once instead of blocking until someone reads it, and a pipe that an interrupted read left in the middle of a
        message is never read again.
        """
        for connection in self.connections:
            try:
                connection.send(None)
            except OSError:
                pass
        for connection in self.connections:
            connection.close()
        if wait_for_work:
            running = set(self.processes)
            while running:
                running.difference_update(wait(list(running)))
            for connection in self.connections:
                if isinstance(connection, _LocalDecoder):
                    connection.thread.join()


def _died() -> WorkerDiedError:
    return WorkerDiedError(
        "a decoding process died (killed by the system, e.g. out of memory): try fewer --workers or a larger "
        "instance; no manifest was written"
    )


def ordered_map(
    function: Callable[[Any], Any],
    items: Iterable[Any],
    workers: int,
    context: multiprocessing.context.BaseContext | None = None,
    initializer: Callable[[], None] | None = None,
) -> Iterator[Any]:
    """``map(function, items)`` over ``workers`` decoders, results in input order (see the module docstring).

    Args:
        function: a module-level function (child processes receive it by name).
        items: picklable arguments, consumed lazily.
        workers: decoders; 1 runs everything in the calling thread.
        context: how child processes start (default: ``multiprocessing``'s default).
        initializer: a module-level function called once in each child process before its first task.

    Raises:
        WorkerDiedError: a child process died; an exception ``function`` raised, as ``map`` would.
    """
    if workers <= 1:
        yield from map(function, items)
        return
    decoders = _Decoders(function, workers, context or multiprocessing.get_context(), initializer)
    finished = False
    try:
        tasks = enumerate(items)
        done: dict[int, tuple[bool, Any]] = {}
        sent = following = 0
        exhausted = False
        while True:
            while decoders.idle and not exhausted and sent - following < workers * WINDOW_PER_WORKER:
                task = next(tasks, None)
                if task is None:
                    exhausted = True
                    break
                decoders.send(task)
                sent += 1
            if following in done:
                ok, value = done.pop(following)
                following += 1
                if not ok:
                    raise value
                yield value
            elif exhausted and following == sent:
                break
            else:
                done.update((index, (ok, value)) for index, ok, value in decoders.receive())
        finished = True
    finally:
        # After the last result the decoders are idle: let them stop on their own. On an error, wait until the
        # processes have finished the video they were decoding.
        decoders.close(wait_for_work=not finished)
