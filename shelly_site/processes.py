"""Processes that stop together (§9: every process stops cleanly on SIGINT/SIGTERM, no orphans).

`Supervisor` runs the demo's children; `die_with_parent` is the kernel's
safety net for a parent that is killed before it can stop its children.
"""

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import time

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask Linux to send `sig` to this process when its parent dies (nothing elsewhere).

    A parent killed with SIGKILL cannot stop its children; with this they stop
    themselves. Call it in the child, right after the fork.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        pass


class Supervisor:
    """Child processes started together and stopped together.

    Each child runs in its own process group, so a terminal's Ctrl-C reaches
    only the supervisor, which stops the children in order: SIGTERM to each
    child's main process (a qcluster then stops its own workers), a bounded
    wait, then SIGKILL to whatever is left of each child's process group —
    grandchildren included. A second Ctrl-C skips the wait.
    """

    def __init__(self, *, stop_window_s: float = 15.0, poll_s: float = 0.5):
        self.stop_window_s = stop_window_s
        self.poll_s = poll_s
        self.children: dict[str, subprocess.Popen] = {}
        self.stop_signal: int | None = None
        self._hurry = False

    def handle_signals(self, *signals: int) -> None:
        for sig in signals or (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        if self.stop_signal is not None:
            self._hurry = True
        self.stop_signal = signum

    def start(self, name: str, argv: list[str], **popen_kwargs) -> subprocess.Popen:
        process = subprocess.Popen(argv, process_group=0, preexec_fn=die_with_parent, **popen_kwargs)
        self.children[name] = process
        return process

    def exited_child(self) -> str | None:
        return next((name for name, process in self.children.items() if process.poll() is not None), None)

    def wait(self) -> str | None:
        """Block until a signal arrives (None) or a child exits (its name)."""
        while self.stop_signal is None:
            exited = self.exited_child()
            if exited is not None:
                return exited
            time.sleep(self.poll_s)
        return None

    def sleep(self, seconds: float) -> bool:
        """Sleep unless a signal comes first; True when it did."""
        deadline = time.monotonic() + seconds
        while self.stop_signal is None and time.monotonic() < deadline:
            time.sleep(min(self.poll_s, max(0.0, deadline - time.monotonic())))
        return self.stop_signal is not None

    def stop(self) -> list[str]:
        """Stop every child; the names of those that had to be killed."""
        for process in self.children.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_window_s
        while not self._hurry and time.monotonic() < deadline:
            if all(process.poll() is not None for process in self.children.values()):
                break
            time.sleep(0.1)
        killed = [name for name, process in self.children.items() if process.poll() is None]
        for process in self.children.values():
            # Also after a clean exit: a child's own children may still be there.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        for process in self.children.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        return killed
