from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext_lazy as _

from collector import cycles, provisioning
from collector.models import (
    ApiToken,
    Channel,
    ChannelState,
    Cycle,
    Device,
    EnergyInterval,
    IngestToken,
    PowerLog,
)
from configs.admin import ConfigHistoryInline


class ReadOnlyAdmin(admin.ModelAdmin):
    """History is never edited by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ChannelInline(admin.TabularInline):
    model = Channel
    extra = 0
    fields = ("key", "name", "policy", "threshold_w", "stop_timeout_s", "sample_minutes", "enabled")
    show_change_link = True


def device_password_field() -> forms.CharField:
    """A device password: typed, never rendered back (not even in the page's source)."""
    return forms.CharField(
        label=_("device password"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("Only when the device has authentication enabled."),
    )


class DeviceAdminForm(forms.ModelForm):
    """The device password is typed, never shown back (not even in the page's source)."""

    password = device_password_field()
    clear_password = forms.BooleanField(label=_("remove the device password"), required=False)

    class Meta:
        model = Device
        fields = ("password",)  # the admin's fieldsets add the rest

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.password:
            self.fields["password"].help_text = _("A password is set: type a new one to replace it, or leave empty.")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("clear_password"):
            cleaned["password"] = ""
        elif not cleaned.get("password"):
            cleaned["password"] = self.instance.password  # left empty: keep the one stored
        return cleaned


class ProvisionForm(forms.Form):
    host = forms.CharField(
        label=_("IP address or host"), max_length=200, help_text=_("As in its web UI, e.g. 192.168.1.40")
    )
    password = device_password_field()
    name = forms.CharField(label=_("name"), max_length=200, required=False)
    server = forms.CharField(
        label=_("server address for devices"),
        max_length=300,
        required=False,
        help_text=_("ws:// or wss:// address of this server as the device reaches it; empty: PUBLIC_WS_URL."),
    )


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    form = DeviceAdminForm
    list_display = (
        "device_id",
        "name",
        "model",
        "transport",
        "enabled",
        "last_seen",
        "last_live_poll_at",
        "last_interval_end",
        "consecutive_failures",
    )
    list_filter = ("transport", "enabled", "model", "auto_registered")
    search_fields = ("device_id", "name", "mac", "host")
    inlines = [ChannelInline]
    reported_fields = ("generation", "mac", "firmware", "app", "profile")
    health_fields = (
        "auto_registered",
        "last_seen",
        "last_live_poll_at",
        "last_interval_end",
        "last_interval_pull_at",
        "consecutive_failures",
        "last_error",
        "last_error_at",
        "info_fetched_at",
        "created_at",
    )
    readonly_fields = reported_fields + health_fields
    actions = ["pull_intervals_now", "provision_over_local_rpc"]
    change_list_template = "admin/collector/device/change_list.html"

    def get_urls(self):
        view = self.admin_site.admin_view(self.provision_view)
        return [path("provision/", view, name="collector_device_provision"), *super().get_urls()]

    def provision_view(self, request):
        """ "Add a Shelly by IP": identity over local RPC, device + token, Ws.SetConfig, reboot, confirm."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        result = None
        form = ProvisionForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                result = provisioning.provision(
                    data["host"], password=data["password"], name=data["name"], server=data["server"] or None
                )
            except provisioning.ProvisioningError as exc:
                form.add_error(None, str(exc))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Add a Shelly by IP"),
            "opts": self.model._meta,
            "form": form,
            "result": result,
            "public_ws_url": settings.PUBLIC_WS_URL,
        }
        response = TemplateResponse(request, "admin/collector/device/provision.html", context)
        add_never_cache_headers(response)
        return response

    @admin.action(description=_("Provision over local RPC (point its WebSocket at this server)"))
    def provision_over_local_rpc(self, request, queryset):
        for device in queryset:
            if not device.host:
                self.message_user(
                    request,
                    _("%(device)s has no host: set its IP address first.") % {"device": device},
                    messages.ERROR,
                )
                continue
            try:
                result = provisioning.provision(device.host, password=device.password)
            except provisioning.ProvisioningError as exc:
                self.message_user(request, f"{device}: {exc}", messages.ERROR)
                continue
            text = (
                _("%(device)s now sends to %(url)s and is connected.")
                if result.connected
                else _("%(device)s now sends to %(url)s but has not connected yet.")
            )
            level = messages.SUCCESS if result.connected else messages.WARNING
            self.message_user(request, text % {"device": result.device, "url": result.server_shown}, level)

    @admin.action(description=_("Pull energy intervals now (polled meters)"))
    def pull_intervals_now(self, request, queryset):
        from django_q.tasks import async_task

        polled = list(queryset.filter(transport="rpc_poll").values_list("pk", flat=True))
        for pk in polled:
            async_task("collector.tasks.pull_energy_intervals", pk, task_name=f"pull intervals of device {pk}")
        self.message_user(request, _("Queued an interval pull for %(n)d polled meter(s).") % {"n": len(polled)})

    fieldsets = (
        (None, {"fields": ("device_id", "name", "model", "transport", "enabled")}),
        (_("Polling (RPC meters)"), {"fields": ("host", "password", "clear_password")}),
        (_("Reported by the device"), {"fields": reported_fields}),
        (_("Health"), {"fields": health_fields}),
    )


class ChannelStateInline(admin.StackedInline):
    model = ChannelState
    can_delete = False
    readonly_fields = [f.name for f in ChannelState._meta.fields]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ("__str__", "device", "key", "policy", "threshold_w", "stop_timeout_s", "running", "enabled")
    list_filter = ("policy", "enabled", "device")
    search_fields = ("name", "key", "device__device_id", "device__name")
    list_select_related = ("device", "state")
    raw_id_fields = ("device",)
    inlines = [ChannelStateInline, ConfigHistoryInline]
    fieldsets = (
        (None, {"fields": ("device", "key", "name", "enabled")}),
        (
            _("Write policy (§5)"),
            {
                "fields": (
                    "policy",
                    "threshold_w",
                    "stop_timeout_s",
                    "interval_s",
                    "delta_w",
                    "sample_minutes",
                    "fill_max_minutes",
                )
            },
        ),
        (_("Cycles (§6)"), {"fields": ("gap_threshold_s", "min_cycle_s", "max_power_w")}),
    )

    @admin.display(boolean=True, description=_("running"))
    def running(self, obj):
        state = getattr(obj, "state", None)
        return bool(state and state.running)


@admin.register(PowerLog)
class PowerLogAdmin(ReadOnlyAdmin):
    list_display = ("timestamp", "device", "channel", "apower_w", "voltage_v", "current_a", "energy_total_wh", "reason")
    list_filter = ("reason", "device", "channel", ("timestamp", admin.DateFieldListFilter))
    date_hierarchy = "timestamp"
    list_select_related = ("device", "channel", "channel__device")
    raw_id_fields = ("device", "channel")
    search_fields = ("device__device_id", "channel__key")
    show_full_result_count = False


@admin.register(EnergyInterval)
class EnergyIntervalAdmin(ReadOnlyAdmin):
    list_display = ("start", "end", "device", "channel", "energy_wh", "returned_energy_wh", "avg_power_w")
    list_filter = ("device", "channel", ("start", admin.DateFieldListFilter))
    date_hierarchy = "start"
    list_select_related = ("device", "channel", "channel__device")
    raw_id_fields = ("device", "channel")
    show_full_result_count = False


@admin.register(Cycle)
class CycleAdmin(ReadOnlyAdmin):
    list_display = (
        "started_at",
        "ended_at",
        "channel",
        "duration_s",
        "energy_wh",
        "energy_method",
        "avg_power_w",
        "peak_power_w",
        "is_noise",
    )
    list_filter = ("is_noise", "energy_method", "channel", ("started_at", admin.DateFieldListFilter))
    date_hierarchy = "started_at"
    list_select_related = ("channel", "channel__device")
    raw_id_fields = ("channel",)
    actions = ["rebuild_selected_channels"]

    @admin.action(description=_("Rebuild the cycles of these cycles' channels"))
    def rebuild_selected_channels(self, request, queryset):
        channels = list({cycle.channel for cycle in queryset.select_related("channel")})
        cycles.rebuild_cycles(channels=channels)
        self.message_user(request, _("Rebuilt the cycles of %(n)d channel(s).") % {"n": len(channels)})


class SecretTokenAdmin(admin.ModelAdmin):
    """The raw secret is made on save and shown once, on the page that answers the save.

    Not in a message: Django's default message storage is a cookie, signed but
    readable, that would carry the secret to and from the browser.
    """

    list_display = ("name", "prefix", "enabled", "created_at", "last_used_at")
    list_filter = ("enabled",)
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "created_at", "last_used_at")

    def save_model(self, request, obj, form, change):
        if not change:
            obj.new_secret = obj.set_new_secret()
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj, post_url_continue=None):
        secret = getattr(obj, "new_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Copy the new secret"),
            "opts": self.model._meta,
            "object": obj,
            "secret": secret,
        }
        response = TemplateResponse(request, "admin/collector/secret_created.html", context)
        add_never_cache_headers(response)
        return response


@admin.register(IngestToken)
class IngestTokenAdmin(SecretTokenAdmin):
    list_display = (*SecretTokenAdmin.list_display, "device")
    raw_id_fields = ("device",)
    fields = ("name", "device", "enabled", "prefix", "created_at", "last_used_at")


@admin.register(ApiToken)
class ApiTokenAdmin(SecretTokenAdmin):
    list_display = (*SecretTokenAdmin.list_display, "user", "can_write")
    list_filter = ("enabled", "can_write")
    raw_id_fields = ("user",)
    fields = ("name", "user", "can_write", "enabled", "prefix", "created_at", "last_used_at")
