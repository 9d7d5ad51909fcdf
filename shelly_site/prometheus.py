"""One `/metrics` view for every process (§9), with prometheus-client's multiprocess mode.

Frames arrive in the web processes, intervals in the poller, stop rows and
notifications in the qcluster workers: each process counts in its own memory,
so a web process alone can only show its own share. With
`PROMETHEUS_MULTIPROC_DIR` set, every process writes its samples to files in
that directory and `/metrics` adds them up.

- The directory is shared by all processes of a site (one host, or one volume
  for containers) and emptied when they all start (`manage.py clear_metrics`;
  the demo does it itself).
- Counters of a process that ended stay in the sum until then, so totals
  never go back; live gauges (open connections) of a process are dropped when
  it exits.
- Files are named by host and process id: containers sharing the volume, each
  with its own pid 1, do not write into each other's files.

Without the setting each process counts alone (tests, a single web process).
"""

import atexit
import os
import socket
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess, values

__all__ = ["CONTENT_TYPE_LATEST", "clear_multiprocess_dir", "exposition", "use_multiprocess_dir"]

_multiprocess_dir: str | None = None


def process_identifier() -> str:
    # Part of a file name that prometheus-client splits on "_".
    return f"{socket.gethostname().replace('_', '-')}-{os.getpid()}"


def use_multiprocess_dir(path: str) -> None:
    """Switch this process to multiprocess mode (before any metric exists: called from settings)."""
    global _multiprocess_dir
    if not path:
        return
    Path(path).mkdir(parents=True, exist_ok=True)
    # prometheus-client reads the variable itself when it opens a file.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    values.ValueClass = values.MultiProcessValue(process_identifier=process_identifier)
    _multiprocess_dir = path
    atexit.register(_drop_live_gauges)


def _drop_live_gauges() -> None:
    multiprocess.mark_process_dead(process_identifier(), _multiprocess_dir)


def clear_multiprocess_dir(path: str) -> int:
    """Remove every process's metric files; only while no process of the site runs. Returns how many."""
    removed = 0
    for file in Path(path).glob("*.db"):
        file.unlink(missing_ok=True)
        removed += 1
    return removed


def exposition() -> bytes:
    """The text `/metrics` serves: this process's metrics, or every process's sum in multiprocess mode."""
    if _multiprocess_dir is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=_multiprocess_dir)
    return generate_latest(registry)
