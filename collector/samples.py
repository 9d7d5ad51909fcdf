"""The one shape every ingestion path produces (§3): a Sample."""

from dataclasses import dataclass
from datetime import datetime


@dataclass(slots=True)
class Sample:
    device_id: str
    channel_key: str
    ts: datetime
    apower_w: float
    voltage_v: float | None = None
    current_a: float | None = None
    energy_total_wh: float | None = None
    pf: float | None = None
    freq: float | None = None
    returned_energy_wh: float | None = None
    idempotency_key: str | None = None

    def values(self) -> dict:
        return {"p": self.apower_w, "v": self.voltage_v, "i": self.current_a, "e": self.energy_total_wh}


@dataclass(slots=True, frozen=True)
class LiveSample:
    """An accepted sample with the channel it landed on, as the pipeline saw it.

    What live readers get on every sample, written or not (an `events`
    channel writes rarely): the dashboard's live cards and the alert rules.
    """

    channel_id: int
    device_pk: int
    sample: Sample
    running: bool  # the channel's run state after this sample
    transport: str
