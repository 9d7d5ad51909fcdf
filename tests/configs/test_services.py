"""SCD2 channel config versions (§7): invariants in the service and in the database."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction

from configs.models import ChannelConfigVersion, CycleImpact, PumpModel
from configs.services import ConfigVersionError, open_new_config_version
from tests.configs.stories import closed_cycle
from tests.scenarios import at, make_channel

pytestmark = pytest.mark.django_db


def versions(channel):
    return list(
        ChannelConfigVersion.objects.filter(channel=channel)
        .order_by("effective_from")
        .values_list("effective_from", "effective_to", "flow_m3h")
    )


def test_new_version_closes_the_previous_exactly_at_its_start():
    channel = make_channel()
    open_new_config_version(channel=channel, effective_from=at(0), flow_m3h=10)
    open_new_config_version(channel=channel, effective_from=at(minutes=90), flow_m3h=12)
    assert versions(channel) == [(at(0), at(minutes=90), 10), (at(minutes=90), None, 12)]


def test_version_starting_at_or_before_the_current_start_is_refused():
    channel = make_channel()
    open_new_config_version(channel=channel, effective_from=at(minutes=60), flow_m3h=10)
    for start in (at(minutes=60), at(minutes=30)):
        with pytest.raises(ConfigVersionError, match="may not overlap"):
            open_new_config_version(channel=channel, effective_from=start, flow_m3h=11)
    assert versions(channel) == [(at(minutes=60), None, 10)]


def test_flow_rate_defaults_to_the_pump_models_nominal_flow():
    pump = PumpModel.objects.create(name="DRO 50", maker="Acme", nominal_power_w=900, nominal_flow_m3h=14.5)
    version = open_new_config_version(channel=make_channel(), effective_from=at(0), pump_model=pump)
    assert version.flow_m3h == 14.5
    with pytest.raises(ConfigVersionError, match="flow rate is needed"):
        open_new_config_version(channel=make_channel(key="switch:1"), effective_from=at(0))


def test_database_refuses_a_second_open_version():
    channel = make_channel()
    open_new_config_version(channel=channel, effective_from=at(0), flow_m3h=10)
    with pytest.raises(IntegrityError), transaction.atomic():
        ChannelConfigVersion.objects.create(channel=channel, effective_from=at(minutes=5), flow_m3h=11)


@pytest.mark.postgres
def test_postgres_refuses_overlapping_closed_versions():
    channel = make_channel()
    ChannelConfigVersion.objects.create(channel=channel, effective_from=at(0), effective_to=at(minutes=60), flow_m3h=1)
    with pytest.raises(IntegrityError, match="ccv_versions_never_overlap"), transaction.atomic():
        ChannelConfigVersion.objects.create(
            channel=channel, effective_from=at(minutes=30), effective_to=at(minutes=90), flow_m3h=2
        )
    # Touching ranges are fine: [0, 60) then [60, 90).
    ChannelConfigVersion.objects.create(
        channel=channel, effective_from=at(minutes=60), effective_to=at(minutes=90), flow_m3h=2
    )


def test_new_version_recomputes_the_impact_of_affected_cycles(q_sync, django_capture_on_commit_callbacks):
    channel = make_channel()
    with django_capture_on_commit_callbacks(execute=True):
        open_new_config_version(channel=channel, effective_from=at(minutes=-600), flow_m3h=10)
    before = closed_cycle(channel, start=at(minutes=-120), minutes=30, energy_wh=100)
    after = closed_cycle(channel, start=at(minutes=30), minutes=30, energy_wh=100)

    with django_capture_on_commit_callbacks(execute=True):
        open_new_config_version(channel=channel, effective_from=at(0), flow_m3h=20)

    assert not CycleImpact.objects.filter(cycle=before).exists()  # ended before the change: untouched
    assert CycleImpact.objects.get(cycle=after).volume_m3 == pytest.approx(20 * 0.5)
    assert after.started_at - at(0) == timedelta(minutes=30)
