"""`manage.py run_poller`: the dedicated asyncio process that polls RPC meters (SPEC §4.3).

Started next to the django-q2 worker. It holds the 10 s live cadence that
q2's scheduler (checked about every 30 s) cannot, pulls EMData intervals and
runs the nightly backfill. With SHELLY_HOST set, that meter is created or
updated as a polled device first (seed 004's env-only setup).
"""

import asyncio
import json
import logging
import signal
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from collector import services
from collector.polling import Poller, PollSettings


class Command(BaseCommand):
    help = _("Poll Shelly energy meters over local RPC: live status, EMData intervals, nightly backfill.")

    def add_arguments(self, parser):
        parser.add_argument("--live-seconds", type=float, help=gettext_lazy("Override POLL_LIVE_SECONDS."))
        parser.add_argument("--interval-seconds", type=float, help=gettext_lazy("Override POLL_INTERVAL_DATA_SECONDS."))
        parser.add_argument("--timeout-ms", type=int, help=gettext_lazy("Override SHELLY_TIMEOUT_MS."))
        parser.add_argument(
            "--refresh-seconds", type=float, default=30.0, help=gettext_lazy("Re-read the device list this often.")
        )
        parser.add_argument(
            "--duration", type=float, help=gettext_lazy("Stop after this many seconds (tests, benchmarks).")
        )
        parser.add_argument("--stats-file", help=gettext_lazy("Write per-device poll statistics as JSON here on exit."))

    def handle(self, *args, **options):
        # One INFO line per HTTP request would drown the poller's own log.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        timeout_ms = options["timeout_ms"]
        config = PollSettings.from_settings(
            live_s=options["live_seconds"],
            interval_s=options["interval_seconds"],
            timeout_s=timeout_ms / 1000 if timeout_ms else None,
        )
        asyncio.run(self._run(config, options))

    async def _run(self, config: PollSettings, options) -> None:
        if settings.SHELLY_HOST:
            device = await sync_to_async(services.ensure_device_from_env)(
                host=settings.SHELLY_HOST, password=settings.SHELLY_PASSWORD
            )
            self.stdout.write(
                _("SHELLY_HOST %(host)s: polled device %(device)s")
                % {"host": settings.SHELLY_HOST, "device": device.device_id}
            )
        poller = Poller(config, refresh_s=options["refresh_seconds"])
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if options["duration"]:
            loop.call_later(options["duration"], stop.set)
        self.stdout.write(
            _("Polling every %(live)g s (intervals every %(intervals)g s, timeout %(timeout)g s); Ctrl-C to stop")
            % {"live": config.live_s, "intervals": config.interval_s, "timeout": config.timeout_s}
        )
        started = time.monotonic()
        await poller.run(stop)
        stats = poller.all_stats()
        polls = sum(s.polls_ok for s in stats.values())
        self.stdout.write(
            _(
                "Stopped after %(s).0f s: %(devices)d device(s), %(ok)d good polls, %(failed)d failed, "
                "%(intervals)d intervals written"
            )
            % {
                "s": time.monotonic() - started,
                "devices": len(stats),
                "ok": polls,
                "failed": sum(s.polls_failed for s in stats.values()),
                "intervals": sum(s.intervals_written for s in stats.values()),
            }
        )
        if options["stats_file"]:
            with open(options["stats_file"], "w") as handle:
                json.dump(
                    {
                        device_id: {
                            "polls_ok": s.polls_ok,
                            "polls_failed": s.polls_failed,
                            "ticks_skipped": s.ticks_skipped,
                            "interval_pulls": s.interval_pulls,
                            "intervals_written": s.intervals_written,
                            "drifts": list(s.drifts),
                        }
                        for device_id, s in stats.items()
                    },
                    handle,
                )
