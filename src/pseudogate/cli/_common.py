"""Small helpers shared by CLI sub-commands: errors, warnings, progress."""

from __future__ import annotations

import sys
import time
from typing import NoReturn, Self, TextIO

from pseudogate.core.errors import InvalidInput

__all__ = ["EXAMPLE_KEYS_WARNING", "Progress", "fail", "warn"]

EXAMPLE_KEYS_WARNING = (
    "WARNING: running on the EXAMPLE keyring (keys_example/). Its keys are public: tokens made "
    "with them protect nothing. Generate real keys with `pseudogate keys generate --wrap`."
)


def fail(message: str) -> NoReturn:
    """Abort the command with a clear message and exit status 2."""
    raise InvalidInput(message)


def warn(message: str, *, stream: TextIO | None = None) -> None:
    print(message, file=stream or sys.stderr)


class Progress:
    """A one-line progress bar on a terminal; silent when stderr is not a TTY."""

    def __init__(self, label: str, total: int | None = None, *, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._stream = stream or sys.stderr
        self._enabled = self._stream.isatty()
        self._last = 0.0
        self._start = time.monotonic()

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self._enabled and now - self._last >= 0.1:
            self._last = now
            self._render(now)

    def _render(self, now: float) -> None:
        rate = self.done / max(now - self._start, 1e-9)
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 30)
            text = f"\r{self.label} [{bar:<30}] {self.done:,}/{self.total:,} ({rate:,.0f}/s)"
        else:
            text = f"\r{self.label} {self.done:,} ({rate:,.0f}/s)"
        self._stream.write(text)
        self._stream.flush()

    def close(self) -> None:
        if self._enabled:
            self._render(time.monotonic())
            self._stream.write("\n")
            self._stream.flush()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
