from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = _("Alerts")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.db.models.signals import m2m_changed, post_delete, post_save

        from alerts import engine
        from alerts.models import AlertRule

        # This process sees its own rule edits at once; other processes within ALERT_RULES_REFRESH_SECONDS.
        def invalidate(**kwargs):
            engine.engine.invalidate()

        post_save.connect(invalidate, sender=AlertRule, dispatch_uid="alerts-rule-saved")
        post_delete.connect(invalidate, sender=AlertRule, dispatch_uid="alerts-rule-deleted")
        m2m_changed.connect(invalidate, sender=AlertRule.notifiers.through, dispatch_uid="alerts-rule-notifiers")
