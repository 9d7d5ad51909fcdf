"""django-q2's cluster, made to stop promptly on SIGTERM or SIGINT, whoever sends it (§9).

django-q2 (1.11) hangs when SIGTERM reaches its whole process group (systemd's
default KillMode, `kill -- -PGID`): SIGTERM is fatal to its sentinel process,
which dies at once, and the main process then blocks forever in
`stop_event.set()`, whose multiprocessing Condition waits for the dead
sentinel to acknowledge. And when the main process is killed, the sentinel,
workers, monitor and pusher live on as orphans.

`PromptCluster` keeps django-q2's graceful stop (the sentinel stops the
pusher, lets the workers finish, stops the monitor), and:
- raises the stop flag without waiting for the sentinel to wake: the
  sentinel's guard loop sees it within `guard_cycle` seconds, and a sentinel
  killed by the same signal can no longer hang the main process;
- a second signal while stopping does not start a second stop;
- a watchdog ends the cluster if a stop takes longer than `stop_window_s`
  (a task that does not finish is retried after Q_CLUSTER `retry`);
- every process of the cluster gets SIGTERM from the kernel when its parent
  dies, so a killed main process leaves no orphans.
"""

import logging
import os
import signal
import threading
from multiprocessing import util as multiprocessing_util

from django_q.cluster import Cluster

from shelly_site.processes import die_with_parent

log = logging.getLogger(__name__)

STOP_WINDOW_S = 20.0


def _raise_without_waking(event) -> None:
    """Set a multiprocessing Event without `Event.set()`'s wake-up handshake.

    `set()` takes the event's lock and waits for each sleeper to acknowledge;
    a sentinel killed while sleeping in `stop_event.wait()` never does. The
    flag (a semaphore) is all `wait()` and `is_set()` look at.
    """
    event._flag.acquire(False)
    event._flag.release()


def _die_with_parent_after_fork(_cluster) -> None:
    die_with_parent(signal.SIGTERM)


class PromptCluster(Cluster):
    def __init__(self, broker=None, *, stop_window_s: float = STOP_WINDOW_S):
        super().__init__(broker)
        self.stop_window_s = stop_window_s
        self._stop_requested = False
        # Runs in every process forked from here and from the sentinel
        # (workers, monitor, pusher): multiprocessing copies the hook along.
        multiprocessing_util.register_after_fork(self, _die_with_parent_after_fork)

    def sig_handler(self, signum, frame):
        if self._stop_requested:
            return
        self._stop_requested = True
        watchdog = threading.Timer(self.stop_window_s, self._give_up)
        watchdog.daemon = True
        watchdog.start()
        super().sig_handler(signum, frame)

    def stop(self) -> bool:
        sentinel = self.sentinel
        if sentinel is None or not sentinel.is_alive():
            return False
        log.info("worker cluster stopping", extra={"event": "qcluster_stopping"})
        _raise_without_waking(self.stop_event)
        sentinel.join()
        self.start_event = None
        self.stop_event = None
        log.info("worker cluster stopped", extra={"event": "qcluster_stopped"})
        return True

    def _give_up(self) -> None:
        log.warning(
            "worker cluster did not stop within %s s: killing it",
            self.stop_window_s,
            extra={"event": "qcluster_killed"},
        )
        sentinel = self.sentinel
        if sentinel is not None and sentinel.is_alive():
            sentinel.kill()  # its children follow (parent-death signal)
        logging.shutdown()
        os._exit(1)
