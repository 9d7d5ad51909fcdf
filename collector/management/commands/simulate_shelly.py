"""`manage.py simulate_shelly`: play real-protocol Shelly devices (§4.4).

Runs until Ctrl-C (or `--duration`), printing a progress line every few
seconds. `--kind` picks the simulator (see `collector.simulators.SIMULATOR_KINDS`).
"""

import asyncio
import signal

from django.core.management.base import BaseCommand, CommandError

from collector.simulators import SIMULATOR_KINDS, simulator_module


def _positive_float(value):
    number = float(value)
    if number <= 0:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = "Simulate Shelly devices talking to a server (demo, tests, benchmarks). Runs until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--kind", choices=sorted(SIMULATOR_KINDS), default="pro4pm", help="Device kind.")
        parser.add_argument("--devices", type=int, default=1, help="Number of devices (default 1).")
        parser.add_argument("--rate", type=_positive_float, default=1.0, help="Frames per second per device.")
        parser.add_argument("--duration", type=_positive_float, default=None, help="Seconds (default: forever).")
        parser.add_argument("--seed", type=int, default=0, help="Same seed, same devices and the same day.")
        parser.add_argument("--progress-every", type=_positive_float, default=5.0, help="Seconds between lines.")
        for kind in SIMULATOR_KINDS:
            simulator_module(kind).add_arguments(parser)

    def handle(self, *args, **options):
        if options["devices"] < 1:
            raise CommandError("--devices must be at least 1")
        module = simulator_module(options["kind"])
        try:
            summary = asyncio.run(self._run(module, options))
        except KeyboardInterrupt:
            summary = "Interrupted."
        self.stdout.write(summary)

    async def _run(self, module, options):
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):  # not the main thread (call_command in tests)
                pass
        return await module.run_command(options, stdout=self.stdout, stop=stop)
