"""Demo data for `make run`: names, a pump model, config versions, a tariff, a grid factor and some history.

So that on first start every figure of the dashboard shows a number (§9).
Everything here is idempotent (run at every `manage.py demo`) and never
overwrites what an admin changed: a name is set only when empty, a config
version only opened for a channel that has none, a tariff only created when
there is no site default. Values that are not real site figures are marked
as demo values (`is_example`, notes).

History, written once per device:
- the simulated Pro 4PM pumps' last days, played through the real pipeline
  (same write policies, cycles and impact code as live data) from the same
  load models the simulator uses;
- the simulated meter's energy per hour for the months before the
  simulator's own 1-minute memory (which the poller reads at start), so the
  energy page has daily and monthly bars at once.
"""

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import Min
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from collector.models import Channel, Device, EnergyInterval, PowerLog, Transport, WritePolicy
from collector.pipeline import ingest_samples
from collector.samples import Sample
from collector.services import ensure_device_from_env
from collector.simulators.pro4pm import device_identity, scenario_profiles
from collector.simulators.pump import LoadModel
from configs.impact import recompute_cycle_impacts
from configs.models import ChannelConfigVersion, EmissionFactorSet, PumpModel, Tariff
from configs.services import open_new_config_version

DEMO_NOTE = gettext_noop("Demo value (make run): replace it with your site's figure.")
SIMULATOR_SEED = 0  # `manage.py demo` runs the simulator without --seed
PUMP_HISTORY_HOURS = 48
PUMP_STEP_S = 20
METER_HISTORY_DAYS = 400
METER_SIMULATOR_HISTORY_S = 6 * 3600  # simulate_shelly --kind rpc3em keeps 6 h of 1-minute records

# (name, pump model key or None) per switch output of a simulated Pro 4PM ("pumps" scenario).
# Names are data, written once in the site's language (LANGUAGE_CODE).
SWITCH_NAMES = [
    [
        (gettext_noop("Pump P1 — feed pump"), "feed"),
        (gettext_noop("Pump P2 — recirculation"), "recirculation"),
        (gettext_noop("Aerator"), None),
        (gettext_noop("Spare output"), None),
    ],
    [
        (gettext_noop("Pump P3 — filter feed"), "feed"),
        (gettext_noop("Pump P4 — drain pump"), "recirculation"),
        (gettext_noop("Blower"), None),
        (gettext_noop("Spare output"), None),
    ],
]
PUMP_MODELS = {
    # key: (maker, name, nominal W, nominal m³/h)
    "feed": ("Demo Pumps", "DP-800 submersible", 800.0, 12.0),
    "recirculation": ("Demo Pumps", "DP-600 submersible", 600.0, 8.0),
}
# Raw domestic wastewater, orders of magnitude (demo values).
CONCENTRATIONS = {"bod5_mg_l": 300.0, "cod_mg_l": 700.0, "tss_mg_l": 350.0}
METER_CHANNELS = {
    "em:0:a": gettext_noop("Phase A"),
    "em:0:b": gettext_noop("Phase B"),
    "em:0:c": gettext_noop("Phase C"),
    "em:0:total": gettext_noop("Meter total"),
}
DEMO_TARIFF = gettext_noop("Demo tariff (peak / off-peak)")
DEMO_FACTORS = gettext_noop("Demo: IPCC defaults + example grid factor")


@dataclass
class SeedResult:
    steps: list = field(default_factory=list)

    def note(self, text: str) -> None:
        self.steps.append(text)


def seed_demo_data(*, devices: int, meters: int, meter_port: int, stdout=None, now: datetime | None = None):
    """Seed what `manage.py demo` shows: `devices` simulated Pro 4PM, `meters` simulated 3EM from `meter_port`."""
    now = now or timezone.now()
    result = SeedResult()
    history_start = now - timedelta(hours=PUMP_HISTORY_HOURS)
    _demo_factor_set(valid_from=history_start - timedelta(days=1), result=result)
    _demo_tariff(result=result)
    models = {key: _pump_model(*spec) for key, spec in PUMP_MODELS.items()}
    for index in range(devices):
        device_id, mac = device_identity(index, SIMULATOR_SEED)
        device = _named_device(device_id, mac, index)
        names = SWITCH_NAMES[index % len(SWITCH_NAMES)]
        channels = []
        for n, (name, model_key) in enumerate(names):
            label = _(name) if index < len(SWITCH_NAMES) else f"{_(name)} ({index + 1})"
            channel = _named_channel(device, f"switch:{n}", label)
            channels.append(channel)
            if model_key:
                _first_config(channel, models[model_key], effective_from=history_start - timedelta(hours=1))
        if not PowerLog.objects.filter(device=device).exists():
            written = _play_pump_history(index, device, channels, start=history_start, end=now - timedelta(minutes=1))
            result.note(
                _("%(device)s: %(hours)d h of pump history (%(rows)d rows)")
                % {"device": device.name, "hours": PUMP_HISTORY_HOURS, "rows": written}
            )
    for n in range(meters):
        meter = ensure_device_from_env(host=f"127.0.0.1:{meter_port + n}")
        if not meter.name or meter.name.startswith("Meter at "):
            Device.objects.filter(pk=meter.pk).update(
                name=_("Main meter") if n == 0 else _("Meter %(n)d") % {"n": n + 1}
            )
        channels = {
            key: _named_channel(meter, key, _(name), policy=WritePolicy.EVERY) for key, name in METER_CHANNELS.items()
        }
        written = _meter_history(meter, channels, now=now, seed=n + 1)
        if written:
            result.note(
                _("meter %(host)s: %(n)d hourly energy intervals of history") % {"host": meter.host, "n": written}
            )
    if stdout is not None:
        for step in result.steps:
            stdout.write(f"    {step}")
    return result


def _demo_factor_set(*, valid_from: datetime, result: SeedResult) -> None:
    if EmissionFactorSet.objects.filter(grid_factor_kg_per_kwh__isnull=False).exists():
        return
    default = EmissionFactorSet.objects.order_by("valid_from").first()
    values = {}
    if default is not None:
        values = {
            name: getattr(default, name)
            for name in (
                "b0_basis", "b0_bod", "b0_bod_source", "b0_cod", "b0_cod_source",
                "gwp_ch4", "gwp_ch4_source", "mcf_values", "mcf_source",
            )
        }  # fmt: skip
    EmissionFactorSet.objects.create(
        name=_(DEMO_FACTORS),
        valid_from=valid_from,
        grid_factor_kg_per_kwh=0.052,
        grid_factor_source=_(
            "Example value for the demo (order of magnitude of the French grid mix); "
            "enter your supplier's or your country's published factor."
        ),
        is_example=True,
        note=_(DEMO_NOTE),
        **values,
    )
    result.note(_("emission factors with an example grid factor (demo value)"))


def _demo_tariff(*, result: SeedResult) -> None:
    if Tariff.objects.filter(is_site_default=True).exists():
        return
    Tariff.objects.create(
        name=_(DEMO_TARIFF),
        currency="EUR",
        is_site_default=True,
        rules={
            "standing_charge_per_day": 0.45,
            "periods": [
                {"name": "peak", "days": "weekday", "start": "07:00", "end": "23:00", "price_per_kwh": 0.2700},
                {"name": "off-peak", "days": "weekday", "start": "23:00", "end": "07:00", "price_per_kwh": 0.2068},
                {"name": "off-peak", "days": "weekend", "start": "00:00", "end": "24:00", "price_per_kwh": 0.2068},
            ],
        },
        note=_(DEMO_NOTE),
    )
    result.note(_("site tariff with peak and off-peak periods (demo values)"))


def _pump_model(maker, name, power_w, flow_m3h) -> PumpModel:
    model, _created = PumpModel.objects.get_or_create(
        maker=maker,
        name=name,
        defaults={"nominal_power_w": power_w, "nominal_flow_m3h": flow_m3h, "notes": _(DEMO_NOTE)},
    )
    return model


def _named_device(device_id: str, mac: str, index: int) -> Device:
    device, _created = Device.objects.get_or_create(
        device_id=device_id,
        defaults={"mac": mac, "model": "SPSW-004PE16EU", "generation": 2, "transport": Transport.WEBSOCKET},
    )
    if not device.name:
        device.name = _("Lift station %(n)d") % {"n": index + 1}
        Device.objects.filter(pk=device.pk).update(name=device.name)
    return device


def _named_channel(device: Device, key: str, name: str, *, policy=WritePolicy.EVENTS) -> Channel:
    channel, _created = Channel.objects.get_or_create(device=device, key=key, defaults={"name": name, "policy": policy})
    if name and not channel.name:
        Channel.objects.filter(pk=channel.pk).update(name=name)
        channel.name = name
    return channel


def _first_config(channel: Channel, model: PumpModel, *, effective_from: datetime) -> None:
    if ChannelConfigVersion.objects.filter(channel=channel).exists():
        return
    open_new_config_version(
        channel=channel,
        effective_from=effective_from,
        pump_model=model,
        flow_m3h=model.nominal_flow_m3h,
        note=_(DEMO_NOTE),
        **CONCENTRATIONS,
    )


def _play_pump_history(index: int, device: Device, channels, *, start: datetime, end: datetime) -> int:
    """The simulator's load models over [start, end), every PUMP_STEP_S, through the pipeline."""
    profiles = scenario_profiles("pumps", random.Random(f"{SIMULATOR_SEED}:{index}:profiles"))
    t0 = start.timestamp()
    loads = [
        LoadModel(profile, random.Random(f"demo-history:{index}:{n}"), t0=t0, step_hint_s=PUMP_STEP_S)
        for n, profile in enumerate(profiles)
    ]
    energy = [0.0] * len(loads)
    voltage = 230.0
    rng = random.Random(f"demo-history:{index}:voltage")
    samples = []
    steps = int((end - start).total_seconds() // PUMP_STEP_S)
    for step in range(steps):
        t = t0 + step * PUMP_STEP_S
        ts = datetime.fromtimestamp(t, tz=UTC)
        voltage = min(245.0, max(220.0, voltage + rng.gauss(0.0, 0.3)))
        for n, (load, channel) in enumerate(zip(loads, channels, strict=True)):
            reading = load.read(t)
            power = round(reading.apower, 1)
            current = round(power / (voltage * reading.pf), 3) if power > 0 and reading.pf > 0 else 0.0
            samples.append(
                Sample(
                    device_id=device.device_id,
                    channel_key=channel.key,
                    ts=ts,
                    apower_w=power,
                    voltage_v=round(voltage, 1),
                    current_a=current,
                    energy_total_wh=round(energy[n], 3),
                )
            )
            energy[n] += power * PUMP_STEP_S / 3600.0
    before = PowerLog.objects.filter(device=device).count()
    chunk = 5000
    for offset in range(0, len(samples), chunk):
        ingest_samples(samples[offset : offset + chunk], transport=Transport.WEBSOCKET, auto_register=False)
    for channel in channels:
        recompute_cycle_impacts(channel_id=channel.pk)
    return PowerLog.objects.filter(device=device).count() - before


def _hourly_energy_wh(moment: datetime, seed: int) -> dict[str, tuple[float, float]]:
    """Plausible hourly energy per phase (imported, returned) Wh, close to the simulated meter's load."""
    hour = timezone.localtime(moment).hour
    day_of_year = moment.timetuple().tm_yday
    season = 1.0 + 0.15 * math.cos(2 * math.pi * (day_of_year - 15) / 365.0)  # more in winter
    daytime = 1.0 + 0.25 * math.sin(math.pi * max(0, hour - 6) / 16.0) if 6 <= hour < 22 else 0.8
    wobble = random.Random(f"{seed}:{moment.isoformat()}").uniform(0.85, 1.15)
    a = 870.0 * season * daytime * wobble
    b = 177.0 * (0.9 + 0.2 * wobble)
    solar = max(0.0, math.sin(math.pi * (hour - 7) / 12.0)) if 7 <= hour < 19 else 0.0
    c_import = 90.0 * (1.2 - solar) * wobble
    c_return = 120.0 * solar * (2.0 - season)
    return {"a": (a, 0.0), "b": (b, 0.0), "c": (c_import, c_return)}


def _meter_history(meter: Device, channels: dict, *, now: datetime, seed: int) -> int:
    """Hourly intervals from METER_HISTORY_DAYS ago up to what the meter itself still holds."""
    existing = EnergyInterval.objects.filter(device=meter).aggregate(first=Min("start"))["first"]
    end = min(existing or now, now - timedelta(seconds=METER_SIMULATOR_HISTORY_S))
    end = end.replace(minute=0, second=0, microsecond=0)
    local_start = timezone.localtime(now - timedelta(days=METER_HISTORY_DAYS)).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    start = local_start.astimezone(UTC)
    if existing is not None and EnergyInterval.objects.filter(device=meter, meta__demo=True).exists():
        return 0  # seeded on an earlier run
    rows = []
    moment = start
    while moment < end:
        phases = _hourly_energy_wh(moment, seed)
        total_in = sum(v[0] for v in phases.values())
        total_out = sum(v[1] for v in phases.values())
        values = {**{f"em:0:{p}": v for p, v in phases.items()}, "em:0:total": (total_in, total_out)}
        for key, (imported, returned) in values.items():
            rows.append(
                EnergyInterval(
                    device=meter,
                    channel=channels[key],
                    start=moment,
                    end=moment + timedelta(hours=1),
                    energy_wh=round(imported, 3),
                    returned_energy_wh=round(returned, 3),
                    avg_power_w=round(imported - returned, 1),
                    meta={"demo": True},
                )
            )
        moment += timedelta(hours=1)
    with transaction.atomic():
        EnergyInterval.objects.bulk_create(rows, batch_size=2000, ignore_conflicts=True)
    return len(rows)
