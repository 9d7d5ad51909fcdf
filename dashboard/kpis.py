"""The key figures of pump channels over a time range: one function for the dashboard, the API and reports.

Everything comes from the stored cycles (`collector.cycles`) and their impact
parts (`configs.impact`, costed by `configs.tariffs`), read through the same
selectors as `/api/v1/cycles` and `/api/v1/impact`, so a figure on a page is
the figure an API client or a monthly report gets for the same range:

- cycles: cycles started in [start, end), noise excluded unless asked for
  (a running cycle counts); `starts` counts every start, noise included;
- runtime: durations of the closed cycles plus, for a running cycle, its time
  inside the range up to `now` (never 0 while a pump runs);
- energy: the closed cycles' energy (counter or integration, see §6);
- volume, loads, CO₂e and cost: sums of the impact parts starting in the
  range (`configs.selectors.impact_parts`); None when no part has the figure
  (e.g. no grid factor: "not configured", never 0);
- kWh per m³: the impact parts' energy over their volume.
"""

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime

from django.db.models import Count, Min, Q, Sum
from django.utils import timezone

from collector.models import Cycle
from configs.selectors import IMPACT_SUMS, impact_sums_by_channel

SECONDS_PER_DAY = 86400.0
# The impact sums taken as they are; energy and cost get their own names below.
IMPACT_FIGURES = tuple(name for name in IMPACT_SUMS if name not in ("energy_kwh", "energy_cost"))


@dataclass(slots=True)
class Kpis:
    cycles: int = 0
    starts: int = 0
    running: int = 0
    running_since: datetime | None = None
    runtime_s: float = 0.0
    closed_cycles: int = 0
    closed_runtime_s: float = 0.0
    days: float = 1.0
    energy_kwh: float | None = None
    impact_parts: int = 0  # impact parts summed; 0: nothing computed yet (no closed cycle)
    impact_energy_kwh: float | None = None
    volume_m3: float | None = None
    bod5_kg: float | None = None
    cod_kg: float | None = None
    tss_kg: float | None = None
    electricity_co2e_kg: float | None = None
    avoided_ch4_kg: float | None = None
    avoided_co2e_kg: float | None = None
    net_co2e_kg: float | None = None
    cost: float | None = None
    currency: str = ""

    @property
    def runtime_h(self) -> float:
        return self.runtime_s / 3600.0

    @property
    def average_cycle_s(self) -> float | None:
        return self.closed_runtime_s / self.closed_cycles if self.closed_cycles else None

    @property
    def starts_per_day(self) -> float:
        return self.starts / self.days

    @property
    def kwh_per_m3(self) -> float | None:
        if self.impact_energy_kwh is None or not self.volume_m3:
            return None
        return self.impact_energy_kwh / self.volume_m3

    def as_dict(self) -> dict:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(
            runtime_h=self.runtime_h,
            average_cycle_s=self.average_cycle_s,
            starts_per_day=self.starts_per_day,
            kwh_per_m3=self.kwh_per_m3,
        )
        return values


def _add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def channel_kpis(
    *,
    channel_ids: Iterable[int],
    start: datetime,
    end: datetime,
    now: datetime | None = None,
    include_noise: bool = False,
) -> dict[int, Kpis]:
    """{channel id: Kpis over [start, end)} for every channel asked for (zeros when nothing ran). Three queries."""
    channel_ids = list(channel_ids)
    now = min(now or timezone.now(), end)
    days = max((end - start).total_seconds() / SECONDS_PER_DAY, 1 / 24)
    result = {channel_id: Kpis(days=days) for channel_id in channel_ids}
    counted = Q() if include_noise else Q(is_noise=False)
    closed = counted & Q(ended_at__isnull=False)
    rows = (
        Cycle.objects.filter(channel_id__in=channel_ids, started_at__gte=start, started_at__lt=end)
        .values("channel_id")
        .annotate(
            starts=Count("id"),
            cycles=Count("id", filter=counted),
            closed_cycles=Count("id", filter=closed),
            closed_runtime_s=Sum("duration_s", filter=closed),
            energy_wh=Sum("energy_wh", filter=closed),
            running=Count("id", filter=Q(ended_at__isnull=True)),
        )
        .order_by()
    )
    for row in rows:
        kpis = result[row["channel_id"]]
        kpis.starts, kpis.cycles, kpis.closed_cycles = row["starts"], row["cycles"], row["closed_cycles"]
        kpis.closed_runtime_s = kpis.runtime_s = row["closed_runtime_s"] or 0.0
        kpis.running = row["running"]
        if row["energy_wh"] is not None:
            kpis.energy_kwh = row["energy_wh"] / 1000.0
    # A run in progress adds its time inside the range, also when it started
    # before (a pump running across midnight counts from midnight today).
    running = (
        Cycle.objects.filter(channel_id__in=channel_ids, ended_at__isnull=True, started_at__lt=end)
        .values("channel_id")
        .annotate(since=Min("started_at"))
        .order_by()
    )
    for row in running:
        kpis = result[row["channel_id"]]
        kpis.running_since = row["since"]
        kpis.runtime_s += max(0.0, (now - max(row["since"], start)).total_seconds())
    sums = impact_sums_by_channel(channel_ids=channel_ids, start=start, end=end, include_noise=include_noise)
    for channel_id, totals in sums.items():
        kpis = result[channel_id]
        for name in IMPACT_FIGURES:
            setattr(kpis, name, totals[name])
        kpis.impact_energy_kwh = totals["energy_kwh"]
        kpis.impact_parts = totals["parts"]
        kpis.cost = totals["energy_cost"]
        kpis.currency = totals["currency"]
    return result


def total_kpis(many: Iterable[Kpis]) -> Kpis:
    """The site's figures: the channels' figures added up (None stays None only when every channel lacks it)."""
    total = Kpis()
    currencies = set()
    running_since = []
    for kpis in many:
        total.days = kpis.days
        for name in ("cycles", "starts", "running", "runtime_s", "closed_cycles", "closed_runtime_s", "impact_parts"):
            setattr(total, name, getattr(total, name) + getattr(kpis, name))
        for name in ("energy_kwh", "impact_energy_kwh", "cost", *IMPACT_FIGURES):
            setattr(total, name, _add(getattr(total, name), getattr(kpis, name)))
        if kpis.currency:
            currencies.add(kpis.currency)
        if kpis.running_since is not None:
            running_since.append(kpis.running_since)
    total.currency = currencies.pop() if len(currencies) == 1 else ""
    total.running_since = min(running_since, default=None)
    return total


def cost_by_tariff_period(
    *, channel_ids: Iterable[int], start: datetime, end: datetime, include_noise: bool = False
) -> dict[int, dict[str, dict]]:
    """{channel id: {tariff period name: {"energy_kwh", "cost"}}} over [start, end).

    The same impact parts as `channel_kpis` (`configs.selectors.impact_parts`),
    each split across its tariff's periods by `configs.tariffs` exactly as its
    stored cost was computed, so a channel's periods add up to its `cost`.
    Parts without a tariff or without energy have no period (their cost is None too).
    """
    from configs.selectors import impact_parts
    from configs.tariffs import parse_tariff_rules, split_by_tariff_period

    result: dict[int, dict[str, dict]] = {}
    rules = {}
    parts = (
        impact_parts(channel_ids=list(channel_ids), start=start, end=end, include_noise=include_noise)
        .filter(tariff__isnull=False, energy_kwh__isnull=False)
        .select_related("tariff")
        .order_by("starts_at")
    )
    for part in parts:
        if part.tariff_id not in rules:
            rules[part.tariff_id] = parse_tariff_rules(part.tariff.rules)
        periods = result.setdefault(part.channel_id, {})
        for piece in split_by_tariff_period(
            start=part.starts_at, end=part.ends_at, energy_wh=part.energy_kwh * 1000.0, rules=rules[part.tariff_id]
        ):
            totals = periods.setdefault(piece.period, {"energy_kwh": 0.0, "cost": 0.0})
            totals["energy_kwh"] += piece.energy_wh / 1000.0
            totals["cost"] += piece.cost
    return result
