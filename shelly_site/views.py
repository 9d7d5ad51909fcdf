from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from shelly_site.health import health_report
from shelly_site.prometheus import CONTENT_TYPE_LATEST, exposition


@require_GET
def healthz(request):
    healthy, report = health_report()
    return JsonResponse(report, status=200 if healthy else 503)


@require_GET
def metrics(request):
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
