"""Run one model stage in a background thread while another runs in the calling thread.

Transcription (CTranslate2) and diarisation (torch) release the GIL inside their native code,
so on two or more cores they overlap almost completely. Signals reach only the main thread: on
Ctrl-C the main thread asks the background stage to stop at its next progress callback and
waits for it, so no thread is left running native code while the interpreter shuts down.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Cancelled(Exception):
    """Raised inside a background stage's progress callback once the run is stopping."""


class Background(Generic[T]):
    """*work* gets the cancel check to call from its progress callbacks; ``result`` returns its value."""

    def __init__(self, work: Callable[[Callable[[], None]], T], name: str):
        self._work, self.name = work, name
        self._cancel = threading.Event()
        # Set when the work has returned or raised. Waits go through this event, not through
        # Thread.join: a Ctrl-C that interrupts join() marks the thread stopped while it still
        # runs (CPython 3.11, bpo-45274 fix), and every later join() then returns at once.
        self._finished = threading.Event()
        self._error: BaseException | None = None
        self._value: T | None = None
        self._thread = threading.Thread(target=self._run, name=f"emessi-{name}", daemon=True)

    def start(self) -> "Background[T]":
        self._thread.start()
        return self

    def check(self) -> None:
        """Call from the background stage's progress callbacks."""
        if self._cancel.is_set():
            raise Cancelled(self.name)

    def cancel(self) -> None:
        """Ask the stage to stop at its next progress callback and wait until it has."""
        self._cancel.set()
        while True:
            try:
                if self._finished.wait(0.2):
                    break
            except KeyboardInterrupt:
                # A second Ctrl-C while the stage winds down: leaving now would let the
                # interpreter shut down under a thread that is still inside torch.
                continue
        self._thread.join()

    def result(self) -> T:
        """Wait for the stage and return its value; re-raise its error in the calling thread.

        A Ctrl-C (or SIGTERM) that arrives while waiting cancels the stage and joins its thread
        before the interrupt goes on, as it does when it lands in the foreground stage.
        """
        try:
            while not self._finished.wait(0.2):  # short waits keep Ctrl-C responsive
                pass
        except BaseException:
            self.cancel()
            raise
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def _run(self) -> None:
        try:
            self._value = self._work(self.check)
        except BaseException as error:  # noqa: BLE001 - handed to the main thread
            self._error = error
        finally:
            self._finished.set()
