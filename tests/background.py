"""A command run in the background in its own process group, its output read as it comes, for
tests that signal a search mid-way (SIGINT, SIGTERM, SIGKILL) as a user or a scheduler would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class Background:
    """`python -m <args>` in a new session (process group = its pid), stdout and stderr merged."""

    def __init__(self, *args: str):
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True,
                                     # a suite run as a background job inherits SIGINT ignored: restore it
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 240, count: int = 1) -> None:
        """Until `text` has appeared in `count` lines; fails with the output when the process ends first."""
        deadline = time.monotonic() + timeout
        while sum(text in line for line in list(self.lines)) < count:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill_group()
                raise AssertionError(f"never saw {text!r} (x{count}); output:\n{self.output[-4000:]}")
            time.sleep(0.1)

    def signal(self, sig: int, group: bool = True) -> None:
        (os.killpg if group else os.kill)(self.proc.pid, sig)

    def finish(self, timeout: float = 240) -> int:
        rc = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return rc

    def kill_group(self) -> None:
        """SIGKILL to the whole group: the main process and the Ray processes it started."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self._reader.join(timeout=10)
