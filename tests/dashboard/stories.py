"""A pump's day for dashboard tests: a named, configured channel, closed cycles with impact, a running one."""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from collector.models import ChannelState, Cycle, Device
from configs.impact import recompute_cycle_impacts
from configs.models import EmissionFactorSet, PumpModel, Tariff
from configs.services import open_new_config_version
from shelly_site.access import VIEWER_GROUP
from tests.configs.stories import closed_cycle
from tests.scenarios import make_channel

FLAT_TARIFF = {
    "standing_charge_per_day": 0.5,
    "periods": [{"name": "flat", "days": "all", "start": "00:00", "end": "24:00", "price_per_kwh": 0.25}],
}


def user(username, *, staff=False, viewer=False):
    account = get_user_model().objects.create_user(username, password="pw-for-tests", is_staff=staff)
    if viewer:
        account.groups.add(Group.objects.get_or_create(name=VIEWER_GROUP)[0])
    return account


def configured_pump(*, name="Pump P1 — feed pump", key="switch:0", since=None, grid=0.05, tariff=True):
    """A channel with a pump model, a config version (12 m³/h, 300 mg/L BOD5) and the site's factors and tariff."""
    since = since or timezone.now() - timedelta(days=40)
    channel = make_channel(key=key, name=name, policy="events")
    Device.objects.filter(pk=channel.device_id).update(name="Lift station", last_seen=timezone.now())
    model, _ = PumpModel.objects.get_or_create(maker="Acme", name="FP-800", defaults={"nominal_flow_m3h": 12.0})
    open_new_config_version(
        channel=channel,
        effective_from=since,
        pump_model=model,
        flow_m3h=12.0,
        bod5_mg_l=300.0,
        cod_mg_l=700.0,
        tss_mg_l=350.0,
    )
    # The migration's default set, re-created when a transactional test flushed it.
    factors = EmissionFactorSet.objects.first() or EmissionFactorSet.objects.create(
        name="IPCC defaults", valid_from=since
    )
    factors.grid_factor_kg_per_kwh = grid
    factors.grid_factor_source = "test value" if grid is not None else ""
    factors.valid_from = since - timedelta(days=1)
    factors.save()
    if tariff and not Tariff.objects.exists():
        Tariff.objects.create(name="Flat", rules=FLAT_TARIFF, is_site_default=True)
    return channel


def cycles_at(channel, starts, *, minutes=10, energy_wh=150.0, noise=False):
    made = []
    for start in starts:
        cycle = closed_cycle(channel, start=start, minutes=minutes, energy_wh=energy_wh)
        if noise:
            Cycle.objects.filter(pk=cycle.pk).update(is_noise=True)
        made.append(cycle)
    recompute_cycle_impacts(channel_id=channel.pk)
    return made


def running_since(channel, started_at, *, power_w=812.0):
    Cycle.objects.create(channel=channel, started_at=started_at)
    ChannelState.objects.update_or_create(
        channel=channel,
        defaults={
            "running": True,
            "run_started_at": started_at,
            "last_sample_at": timezone.now(),
            "last_values": {"p": power_w, "v": 231.0, "i": 3.9, "e": 1000.0},
        },
    )
