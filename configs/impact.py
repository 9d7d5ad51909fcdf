"""Impact and cost of cycles (§7).

A cycle is split at config-version boundaries; each part gets the flow and
concentrations of its own version and a time-proportional share of the
cycle's energy:

- volume m³ = flow m³/h × running hours
- load kg = concentration mg/L × volume m³ / 1000 (BOD5, COD, TSS)
- electricity CO₂e kg = energy kWh × grid factor — None while no grid factor
  is configured ("not configured", never 0)
- avoided CH₄ kg = (BOD5 or COD) load × B0 × (MCF baseline − MCF system)
- avoided CO₂e kg = avoided CH₄ × GWP CH₄
- net CO₂e kg = avoided − electricity (None when electricity is)
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Q

from collector.models import Cycle
from configs.models import B0Basis, ChannelConfigVersion, CycleImpact, EmissionFactorSet
from configs.tariffs import TariffResolver, energy_cost


@dataclass(slots=True)
class ImpactFigures:
    energy_kwh: float | None
    volume_m3: float | None = None
    bod5_kg: float | None = None
    cod_kg: float | None = None
    tss_kg: float | None = None
    electricity_co2e_kg: float | None = None
    avoided_ch4_kg: float | None = None
    avoided_co2e_kg: float | None = None
    net_co2e_kg: float | None = None


def _load_kg(concentration_mg_l, volume_m3):
    if concentration_mg_l is None or volume_m3 is None:
        return None
    return concentration_mg_l * volume_m3 / 1000.0


def impact_of(
    *, duration_s: float, energy_wh: float | None, config: ChannelConfigVersion | None, factors
) -> ImpactFigures:
    """The §7 formulas for one part of a cycle (pure)."""
    energy_kwh = energy_wh / 1000.0 if energy_wh is not None else None
    figures = ImpactFigures(energy_kwh=energy_kwh)
    grid = factors.grid_factor_kg_per_kwh if factors is not None else None
    if energy_kwh is not None and grid is not None:
        figures.electricity_co2e_kg = energy_kwh * grid
    if config is None:
        return figures
    figures.volume_m3 = config.flow_m3h * duration_s / 3600.0
    figures.bod5_kg = _load_kg(config.bod5_mg_l, figures.volume_m3)
    figures.cod_kg = _load_kg(config.cod_mg_l, figures.volume_m3)
    figures.tss_kg = _load_kg(config.tss_mg_l, figures.volume_m3)
    if factors is None:
        return figures
    if factors.b0_basis == B0Basis.COD:
        basis_kg, b0 = figures.cod_kg, factors.b0_cod
    else:
        basis_kg, b0 = figures.bod5_kg, factors.b0_bod
    if basis_kg is not None:
        mcf_drop = factors.mcf(config.baseline_treatment) - factors.mcf(config.system_treatment)
        figures.avoided_ch4_kg = basis_kg * b0 * mcf_drop
        figures.avoided_co2e_kg = figures.avoided_ch4_kg * factors.gwp_ch4
        if figures.electricity_co2e_kg is not None:
            figures.net_co2e_kg = figures.avoided_co2e_kg - figures.electricity_co2e_kg
    return figures


def split_at_versions(*, start: datetime, end: datetime, versions) -> list[tuple[datetime, datetime, object]]:
    """[(part_start, part_end, version or None)] covering [start, end]; versions sorted by effective_from."""
    parts, cursor = [], start
    for version in versions:
        v_from, v_to = version.effective_from, version.effective_to
        if v_to is not None and v_to <= cursor or v_from >= end:
            continue
        if v_from > cursor:
            parts.append((cursor, v_from, None))
            cursor = v_from
        part_end = min(end, v_to) if v_to is not None else end
        parts.append((cursor, part_end, version))
        cursor = part_end
        if cursor >= end:
            break
    if cursor < end or not parts:
        parts.append((cursor, end, None))
    return parts


class ImpactCalculator:
    """Computes CycleImpact rows for many cycles with a handful of queries."""

    def __init__(self, channel_ids):
        self.versions: dict[int, list] = {}
        for version in ChannelConfigVersion.objects.filter(channel_id__in=channel_ids).order_by("effective_from"):
            self.versions.setdefault(version.channel_id, []).append(version)
        self.factor_sets = list(EmissionFactorSet.objects.order_by("valid_from"))
        self.tariffs = TariffResolver()

    def factors_at(self, moment):
        valid = [f for f in self.factor_sets if f.valid_from <= moment and (f.valid_to is None or moment < f.valid_to)]
        return valid[-1] if valid else None

    def impacts_of(self, cycle: Cycle, *, device_id: int) -> list[CycleImpact]:
        if cycle.ended_at is None:
            return []
        factors = self.factors_at(cycle.started_at)
        parts = split_at_versions(
            start=cycle.started_at, end=cycle.ended_at, versions=self.versions.get(cycle.channel_id, ())
        )
        impacts = []
        for index, (part_start, part_end, version) in enumerate(parts):
            part_s = (part_end - part_start).total_seconds()
            share = part_s / cycle.duration_s if cycle.duration_s else 1.0
            energy_wh = cycle.energy_wh * share if cycle.energy_wh is not None else None
            figures = impact_of(duration_s=part_s, energy_wh=energy_wh, config=version, factors=factors)
            tariff = self.tariffs.tariff_for(channel_id=cycle.channel_id, device_id=device_id, moment=part_start)
            cost = None
            if tariff is not None and energy_wh is not None:
                cost = energy_cost(
                    start=part_start, end=part_end, energy_wh=energy_wh, rules=self.tariffs.rules_of(tariff)
                )
            impacts.append(
                CycleImpact(
                    cycle=cycle,
                    channel_id=cycle.channel_id,
                    config_version=version,
                    factor_set=factors,
                    tariff=tariff,
                    starts_at=part_start,
                    ends_at=part_end,
                    duration_s=part_s,
                    cycle_count=1 if index == 0 else 0,
                    is_noise=cycle.is_noise,
                    energy_cost=cost,
                    currency=tariff.currency if tariff else "",
                    **{name: getattr(figures, name) for name in ImpactFigures.__slots__},
                )
            )
        return impacts


def recompute_cycle_impacts(
    *, cycle_ids=None, channel_id: int | None = None, start: datetime | None = None, end: datetime | None = None
) -> int:
    """Replace the impact rows of the chosen closed cycles; returns how many rows were written.

    Either `cycle_ids`, or a channel and an optional time range (cycles that
    end after `start` and start before `end`).
    """
    cycles = Cycle.objects.filter(ended_at__isnull=False).select_related("channel")
    if cycle_ids is not None:
        cycles = cycles.filter(pk__in=list(cycle_ids))
    if channel_id is not None:
        cycles = cycles.filter(channel_id=channel_id)
    if start is not None:
        cycles = cycles.filter(ended_at__gte=start)
    if end is not None:
        cycles = cycles.filter(started_at__lte=end)
    cycles = list(
        cycles.only(
            "pk", "channel_id", "channel__device_id", "started_at", "ended_at", "duration_s", "energy_wh", "is_noise"
        )
    )
    if not cycles:
        return 0
    calculator = ImpactCalculator({c.channel_id for c in cycles})
    rows = []
    for cycle in cycles:
        rows.extend(calculator.impacts_of(cycle, device_id=cycle.channel.device_id))
    with transaction.atomic():
        ids = [c.pk for c in cycles]
        for offset in range(0, len(ids), 500):
            CycleImpact.objects.filter(cycle_id__in=ids[offset : offset + 500]).delete()
        CycleImpact.objects.bulk_create(rows, batch_size=1000)
    return len(rows)


def cycles_affected_by_version(version: ChannelConfigVersion):
    """Closed cycles of the version's channel that run at or after its start."""
    return Cycle.objects.filter(channel_id=version.channel_id, ended_at__isnull=False).filter(
        Q(ended_at__gt=version.effective_from)
    )
