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
  it exits, and so are the files of a process that counted nothing (every
  `manage.py` command loads the metrics).
- Files are named by host and process id: containers sharing the volume, each
  with its own pid 1, do not write into each other's files.

Without the setting each process counts alone (tests, a single web process).
"""

import atexit
import contextlib
import os
import socket
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess, values
from prometheus_client.mmap_dict import MmapedDict

__all__ = ["CONTENT_TYPE_LATEST", "clear_multiprocess_dir", "exposition", "use_multiprocess_dir"]

_multiprocess_dir: str | None = None


def process_identifier() -> str:
    # Part of a file name that prometheus-client splits on "_".
    return f"{socket.gethostname().replace('_', '-')}-{os.getpid()}"


def use_multiprocess_dir(path: str) -> None:
    """Switch this process to multiprocess mode (before any metric exists: called from settings)."""
    global _multiprocess_dir
    if not path:
        # prometheus-client switches to multiprocess mode when the variable
        # merely exists, even empty, and then writes into the current directory.
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        values.ValueClass = values.MutexValue
        return
    Path(path).mkdir(parents=True, exist_ok=True)
    # prometheus-client reads the variable itself when it opens a file.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    values.ValueClass = values.MultiProcessValue(process_identifier=process_identifier)
    _multiprocess_dir = path
    atexit.register(_tidy_up_on_exit)


def _tidy_up_on_exit() -> None:
    """Drop this process's live gauges, and its files if it never counted anything.

    Counters of a process that did count stay: the sums must not go back.
    Every `manage.py` command loads the metrics, most count nothing.
    """
    identifier = process_identifier()
    multiprocess.mark_process_dead(identifier, _multiprocess_dir)
    for file in Path(_multiprocess_dir).glob(f"*_{identifier}.db"):
        with contextlib.suppress(OSError, RuntimeError):  # gone, or torn by a crash: leave it
            if not any(value for _key, value, _ts, _pos in MmapedDict.read_all_values_from_file(str(file))):
                file.unlink()


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
