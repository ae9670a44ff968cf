"""rmcheck's own progress on stderr: tqdm bars with rate and ETA on a terminal, plain lines otherwise."""
from __future__ import annotations

import sys
import time
from typing import IO, Any


class Progress:
    """The engine's progress callback (``what, done, total``; total 0: a step of unknown size, e.g. a load).

    On a terminal each step (scoring, shrinking, replaying minimal pairs) is a tqdm bar in pairs; in a log
    (not a TTY) each step is one line when it starts and one when it ends, with its rate.
    """

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.what = ""
        self.total = self.done = 0
        self.started = 0.0
        self.bar: Any = None

    def __call__(self, what: str, done: int, total: int) -> None:
        if not total:
            self.close()
            self._line(f"{what} ...")
            return
        if what != self.what or total != self.total or done < self.done:
            self.close()
            self._start(what, total)
        step, self.done = done - self.done, done
        if self.bar is not None:
            self.bar.update(step)
        if done >= total:
            self.close()

    def _start(self, what: str, total: int) -> None:
        self.what, self.total, self.done, self.started = what, total, 0, time.perf_counter()
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=what, unit="pair", file=self.stream, dynamic_ncols=True, leave=False,
                            mininterval=0, miniters=1)  # a batch is seconds of work: show each
        else:
            self._line(f"{what}: {total} pairs")

    def close(self) -> None:
        """End the current step: its bar is cleared; a log gets the step's pairs, time and rate."""
        if not self.what:
            return
        seconds = time.perf_counter() - self.started
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        rate = f", {self.done / seconds:.0f} pairs/s" if seconds > 0 else ""
        self._line(f"{self.what}: {self.done}/{self.total} pairs in {seconds:.1f} s{rate}")
        self.what, self.total, self.done = "", 0, 0

    def _line(self, text: str) -> None:
        if self.tty:
            from tqdm import tqdm

            tqdm.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)
