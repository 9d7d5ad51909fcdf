from django.contrib import admin

from dashboard.models import MonthlyReportDelivery, ReportRecipient


@admin.register(ReportRecipient)
class ReportRecipientAdmin(admin.ModelAdmin):
    list_display = ("email", "language", "active", "created_at")
    list_filter = ("active", "language")
    search_fields = ("email",)


@admin.register(MonthlyReportDelivery)
class MonthlyReportDeliveryAdmin(admin.ModelAdmin):
    """What went out: a record, never edited (delete a row to send that month to that address again)."""

    list_display = ("month", "email", "sent_at")
    list_filter = ("month",)
    search_fields = ("email",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
