"""django-q2 tasks of the project itself."""


def worker_heartbeat() -> str:
    """Does nothing: its Success row tells /healthz that a worker runs (see `shelly_site.health.check_worker`)."""
    return "ok"
