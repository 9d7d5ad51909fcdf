"""Config services (§7): open a new SCD2 channel config version."""

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from collector.models import Channel
from configs.models import ChannelConfigVersion, PumpModel, TreatmentType


class ConfigVersionError(ValidationError):
    pass


def _local(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z")


def check_new_config_version(*, channel: Channel, effective_from: datetime) -> ChannelConfigVersion | None:
    """Refuse a version that would overlap history; returns the version it will close.

    SCD2 only appends: a new version starts strictly after the current one's
    start (then closes it there) and never before or inside a closed version.
    """
    versions = ChannelConfigVersion.objects.filter(channel=channel)
    later = versions.filter(effective_from__gte=effective_from).order_by("effective_from").first()
    if later is not None:
        raise ConfigVersionError(
            _(
                "A config version of %(channel)s already starts at %(start)s, at or after %(moment)s: "
                "versions may not overlap. Choose a time after the current version's start."
            )
            % {"channel": channel, "start": _local(later.effective_from), "moment": _local(effective_from)}
        )
    current = versions.filter(effective_to__isnull=True).first()
    closed_after = versions.filter(effective_to__gt=effective_from).exclude(pk=getattr(current, "pk", None)).first()
    if closed_after is not None:
        raise ConfigVersionError(
            _("%(moment)s falls inside the closed version %(version)s: versions may not overlap.")
            % {"moment": _local(effective_from), "version": closed_after}
        )
    return current


BOUNDED = ("flow_m3h", "bod5_mg_l", "cod_mg_l", "tss_mg_l")


def open_new_config_version(
    *,
    channel: Channel,
    effective_from: datetime | None = None,
    pump_model: PumpModel | None = None,
    flow_m3h: float | None = None,
    bod5_mg_l: float | None = None,
    cod_mg_l: float | None = None,
    tss_mg_l: float | None = None,
    baseline_treatment: str = TreatmentType.SEPTIC,
    system_treatment: str = TreatmentType.WETLAND_VERTICAL,
    note: str = "",
    created_by=None,
) -> ChannelConfigVersion:
    """Close the channel's current version at `effective_from` (default now) and open a new one.

    In one transaction with the channel row locked, so two admins cannot open
    two versions at once; the database constraints (one open version per
    channel; on PostgreSQL no overlapping ranges) back this up. Affected cycles
    get their impact recomputed after commit.
    """
    effective_from = effective_from or timezone.now()
    if flow_m3h is None:
        if pump_model is None or pump_model.nominal_flow_m3h is None:
            raise ConfigVersionError(_("A flow rate is needed: enter one or choose a pump model with a nominal flow."))
        flow_m3h = pump_model.nominal_flow_m3h
    if flow_m3h < 0:
        raise ConfigVersionError(_("The flow rate cannot be negative."))
    # The model's physical ranges, so a service caller cannot store what the admin and the API refuse.
    candidate = ChannelConfigVersion(flow_m3h=flow_m3h, bod5_mg_l=bod5_mg_l, cod_mg_l=cod_mg_l, tss_mg_l=tss_mg_l)
    try:
        candidate.clean_fields(exclude=[f.name for f in ChannelConfigVersion._meta.fields if f.name not in BOUNDED])
    except ValidationError as error:
        raise ConfigVersionError(" ".join(error.messages)) from None
    try:
        with transaction.atomic():
            Channel.objects.select_for_update().filter(pk=channel.pk).first()
            current = check_new_config_version(channel=channel, effective_from=effective_from)
            if current is not None:
                ChannelConfigVersion.objects.filter(pk=current.pk, effective_to__isnull=True).update(
                    effective_to=effective_from
                )
            version = ChannelConfigVersion.objects.create(
                channel=channel,
                effective_from=effective_from,
                pump_model=pump_model,
                flow_m3h=flow_m3h,
                bod5_mg_l=bod5_mg_l,
                cod_mg_l=cod_mg_l,
                tss_mg_l=tss_mg_l,
                baseline_treatment=baseline_treatment,
                system_treatment=system_treatment,
                note=note,
                created_by=created_by,
            )
    except IntegrityError as error:
        raise ConfigVersionError(
            _(
                "Another config version of %(channel)s was saved at the same time or overlaps this one; "
                "reload and retry."
            )
            % {"channel": channel}
        ) from error
    from configs.tasks import enqueue_recompute_after_version

    transaction.on_commit(lambda: enqueue_recompute_after_version(version.pk))
    return version
