from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ReportRecipient(models.Model):
    """An address the monthly report goes to on the 1st (dashboard/monthly_report.py)."""

    email = models.EmailField(_("e-mail address"), unique=True)
    language = models.CharField(_("language"), max_length=8, choices=settings.LANGUAGES, default="fr")
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["email"]
        verbose_name = _("monthly report recipient")
        verbose_name_plural = _("monthly report recipients")

    def __str__(self):
        return self.email


class MonthlyReportDelivery(models.Model):
    """One report of one month sent to one address: what makes the monthly send run once per month."""

    month = models.DateField(_("month"), help_text=_("Its first day."))
    email = models.EmailField(_("e-mail address"))
    sent_at = models.DateTimeField(_("sent at"), default=timezone.now)

    class Meta:
        ordering = ["-month", "email"]
        constraints = [models.UniqueConstraint(fields=["month", "email"], name="report_delivery_once_per_month")]
        verbose_name = _("monthly report sent")
        verbose_name_plural = _("monthly reports sent")

    def __str__(self):
        return f"{self.month:%Y-%m} → {self.email}"
