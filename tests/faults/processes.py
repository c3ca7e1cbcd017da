"""``pseudogate serve`` as a real process that a test can kill -9 or stop with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pseudogate

#: The source tree being tested: subprocesses import the same code as the test process.
_SOURCE = str(Path(pseudogate.__file__).resolve().parents[1])
START_TIMEOUT = 60.0


class ServeProcess:
    """One ``pseudogate serve --insecure --port 0`` on a data directory; logs go to files."""

    def __init__(self, *, data_dir: Path, policies: Path, logs: Path, name: str) -> None:
        self.data_dir = data_dir
        self.ready = logs / f"{name}.ready"
        self.stdout = logs / f"{name}.out"
        self.stderr = logs / f"{name}.err"
        self.ready.unlink(missing_ok=True)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in (_SOURCE, os.environ.get("PYTHONPATH")) if p),
            "PYTHONUNBUFFERED": "1",
        }
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "pseudogate", "serve", "--insecure",
                    "--host", "127.0.0.1", "--port", "0",
                    "--data-dir", str(data_dir), "--policies", str(policies),
                    "--ready-file", str(self.ready),
                ],
                stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
            )
        try:
            self.port = self._wait_ready()
        except BaseException:
            self.kill()  # never leave a half-started server behind
            raise

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 15) -> str:
        text = self.stderr.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _wait_ready(self) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            text = self.ready.read_text() if self.ready.exists() else ""
            if text.endswith("\n") and text.strip().isdigit():  # written whole (not atomically)
                return int(text)
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"pseudogate serve on {self.data_dir} exited {self.proc.returncode} before it "
                    f"was ready:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"pseudogate serve on {self.data_dir} did not start in time")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind runs in the server."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait: the graceful stop (final audit checkpoint)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"pseudogate serve did not stop within {timeout} s") from None
