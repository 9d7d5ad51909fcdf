"""Admin: editing a channel's config opens a new version; history is read-only."""

import pytest
from django.utils import timezone

from configs.models import ChannelConfigVersion
from configs.services import open_new_config_version
from tests.scenarios import at, make_channel

pytestmark = pytest.mark.django_db


def change_url(channel):
    return f"/admin/configs/channelconfig/{channel.pk}/change/"


def post_new_version(client, channel, *, effective_from, **fields):
    page = client.get(change_url(channel))
    assert page.status_code == 200
    data = {}
    for inline in page.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        data.update({f"{management.prefix}-{name}": value for name, value in management.initial.items()})
    local = timezone.localtime(effective_from)
    data |= {
        "effective_from_0": local.strftime("%Y-%m-%d"),
        "effective_from_1": local.strftime("%H:%M:%S"),
        "baseline_treatment": "septic",
        "system_treatment": "wetland_vertical",
        **fields,
    }
    return client.post(change_url(channel), data)


def test_editing_a_channel_config_opens_a_new_version_and_keeps_history(admin_client):
    channel = make_channel()
    open_new_config_version(channel=channel, effective_from=at(0), flow_m3h=10, bod5_mg_l=300)

    response = post_new_version(admin_client, channel, effective_from=at(minutes=60), flow_m3h="12", bod5_mg_l="280")

    assert response.status_code == 302
    old, new = ChannelConfigVersion.objects.filter(channel=channel).order_by("effective_from")
    assert (old.effective_from, old.effective_to, old.flow_m3h, old.bod5_mg_l) == (at(0), at(minutes=60), 10, 300)
    assert (new.effective_from, new.effective_to, new.flow_m3h, new.bod5_mg_l) == (at(minutes=60), None, 12, 280)
    assert new.created_by.username == "root"


def test_overlapping_version_gets_a_clear_admin_error(admin_client):
    channel = make_channel()
    open_new_config_version(channel=channel, effective_from=at(0), flow_m3h=10)

    response = post_new_version(admin_client, channel, effective_from=at(minutes=-30), flow_m3h="12")

    assert response.status_code == 200
    assert "versions may not overlap" in response.content.decode()
    assert ChannelConfigVersion.objects.filter(channel=channel).count() == 1


def test_history_is_shown_read_only(admin_client):
    channel = make_channel()
    version = open_new_config_version(channel=channel, effective_from=at(0), flow_m3h=10, note="first fill")
    page = admin_client.get(change_url(channel)).content.decode().lower()
    assert "config history (read-only)" in page and "first fill" in page
    assert admin_client.post(f"/admin/configs/channelconfigversion/{version.pk}/change/", {}).status_code == 403
    assert admin_client.get("/admin/configs/channelconfigversion/add/").status_code == 403


def test_emission_factor_value_without_source_is_refused(admin_client):
    from configs.models import EmissionFactorSet

    factors = EmissionFactorSet.objects.get()
    factors.grid_factor_kg_per_kwh = 0.05
    factors.grid_factor_source = ""
    with pytest.raises(Exception, match="needs its source"):
        factors.full_clean()
