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
