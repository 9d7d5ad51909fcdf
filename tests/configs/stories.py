"""Helpers for configs tests: a channel with a stored cycle and config versions."""

from datetime import timedelta

from collector.models import Cycle
from configs.models import EmissionFactorSet
from configs.services import open_new_config_version
from tests.scenarios import at, make_channel


def closed_cycle(channel, *, start, minutes, energy_wh):
    return Cycle.objects.create(
        channel=channel,
        started_at=start,
        ended_at=start + timedelta(minutes=minutes),
        duration_s=minutes * 60,
        energy_wh=energy_wh,
        energy_method="counter",
        avg_power_w=energy_wh * 60 / minutes,
        peak_power_w=energy_wh * 60 / minutes,
    )


def factor_set(*, grid=None, basis="bod", gwp=27.0):
    """The migration's default set, with a grid factor when asked for."""
    factors = EmissionFactorSet.objects.get()
    factors.grid_factor_kg_per_kwh = grid
    factors.grid_factor_source = "test value" if grid is not None else ""
    factors.b0_basis = basis
    factors.gwp_ch4 = gwp
    factors.save()
    return factors


def configured_channel(**version):
    channel = make_channel(policy="events")
    open_new_config_version(channel=channel, effective_from=at(minutes=-60 * 24), **version)
    return channel
