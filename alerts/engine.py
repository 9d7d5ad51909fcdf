"""Alert rules on live samples and on time (SPEC §8).

`observe_samples` is called by the pipeline with every accepted sample of
every path (WebSocket, poller, batch), written or not.
"""

from collector.samples import LiveSample


def observe_samples(live: list[LiveSample]) -> None:
    """Evaluate the power rules of these samples' channels (not built yet: see the alerts issue)."""
