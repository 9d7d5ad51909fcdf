"""Admin for rules, state, events and notifiers, with a "send test notification" action."""

from django.contrib import admin, messages
from django.utils.html import format_html_join
from django.utils.translation import gettext_lazy as _

from alerts import notifiers, services
from alerts.models import AlertEvent, AlertRule, AlertState, Delivery, Notifier


def _config_help():
    rows = []
    for kind in notifiers.REGISTRY.values():
        keys = ", ".join(
            f"{name}{'*' if required else ''} ({help_})" for name, (required, help_) in kind.fields.items()
        )
        rows.append((kind.key, keys))
    return format_html_join("", "<br><b>{}</b>: {}", rows)


@admin.register(Notifier)
class NotifierAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "enabled", "pulse_seconds", "from_environment"]
    list_filter = ["kind", "enabled"]
    actions = ["send_test"]

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        field = form.base_fields.get("config")
        if field is not None:
            field.help_text = _("JSON object; keys per kind (* = required):") + _config_help()
        return form

    @admin.action(description=_("Send test notification"))
    def send_test(self, request, queryset):
        for notifier in queryset:
            try:
                notifier.clean()
            except Exception as error:  # an invalid config: say so instead of sending
                self.message_user(request, f"{notifier.name}: {error}", messages.ERROR)
                continue
            delivery = services.send_test(notifier)
            kind = notifiers.get_kind(notifier.kind)
            if delivery.status == Delivery.Status.OK:
                suffix = _(" — OFF in %(s)s s") % {"s": notifier.pulse_seconds} if kind.pulse else ""
                self.message_user(
                    request, f"{notifier.name}: {_('sent')} ({delivery.detail}){suffix}", messages.SUCCESS
                )
            else:
                text = _("failed after %(n)s attempt(s)") % {"n": delivery.attempts}
                self.message_user(request, f"{notifier.name}: {text}: {delivery.detail}", messages.ERROR)


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "threshold", "channel", "device", "enabled"]
    list_filter = ["kind", "enabled"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["notifiers"]
    autocomplete_fields = []
    raw_id_fields = ["channel", "device"]


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(AlertState)
class AlertStateAdmin(ReadOnlyAdmin):
    list_display = ["rule", "subject", "active", "since", "last_triggered_at", "cooldown_until", "version"]
    list_filter = ["active", "rule"]


class DeliveryInline(admin.TabularInline):
    model = Delivery
    extra = 0
    can_delete = False
    fields = ["notifier", "step", "status", "attempts", "status_code", "detail", "finished_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(AlertEvent)
class AlertEventAdmin(ReadOnlyAdmin):
    list_display = ["ts", "rule", "action", "channel", "value", "notified"]
    list_filter = ["action", "notified", "rule"]
    date_hierarchy = "ts"
    inlines = [DeliveryInline]


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "notifier", "step", "status", "attempts", "status_code", "is_test"]
    list_filter = ["status", "step", "is_test"]
