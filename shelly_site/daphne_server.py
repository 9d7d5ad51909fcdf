"""Daphne, with its access log going through Python logging.

The stock `daphne` command writes its access log straight to stdout, past
every logging filter: each device's `WSCONNECT /ws/shelly/<ingest token>/`
would be printed in clear. Started as

    python -m shelly_site.daphne_server -b 127.0.0.1 -p 8000 shelly_site.asgi:application

(any daphne option works) the same lines go to the `daphne.access` logger,
where `settings.LOGGING` redacts the token and formats them as plain text or
JSON like every other line. `-v 0` turns the access log off, as with daphne.

It also stops on SIGINT however it was started. A process inherits an ignored
SIGINT from a non-interactive shell that runs it in the background (`cmd &`
in a script, a CI job), and Twisted installs its SIGINT handler only
over Python's default one, so the stock daphne then ignores SIGINT for good
(SIGTERM still works). uvicorn, the worker, the poller and the simulators all
install their own handlers whatever they inherited; this does the same.
"""

import logging
import signal

from daphne.cli import CommandLineInterface
from daphne.server import Server

access_log = logging.getLogger("daphne.access")

# daphne's action names, as its own access log spells them.
_WEBSOCKET_ACTIONS = {
    "connecting": "WSCONNECTING",
    "rejected": "WSREJECT",
    "connected": "WSCONNECT",
    "disconnected": "WSDISCONNECT",
}


def log_action(protocol: str, action: str, details: dict) -> None:
    """daphne's action-logger interface: one access-log line per HTTP response or WebSocket event."""
    if protocol == "http" and action == "complete":
        access_log.info(
            '%s "%s %s" %s %s',
            details["client"],
            details["method"],
            details["path"],
            details["status"],
            details["size"],
            extra={"event": "http_access", "status": details["status"]},
        )
    elif protocol == "websocket" and action in _WEBSOCKET_ACTIONS:
        access_log.info(
            '%s "%s %s"',
            details["client"],
            _WEBSOCKET_ACTIONS[action],
            details["path"],
            extra={"event": "websocket_access"},
        )


class LoggingAccessServer(Server):
    def __init__(self, *args, action_logger=None, **kwargs):
        # daphne passes an action logger when its access log is on (verbosity >= 1 or --access-log).
        super().__init__(*args, action_logger=log_action if action_logger else None, **kwargs)


class DaphneCommandLine(CommandLineInterface):
    server_class = LoggingAccessServer


def stop_on_sigint() -> None:
    """Give SIGINT back its default Python handler, so Twisted's reactor takes it over."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


def main() -> None:
    stop_on_sigint()
    DaphneCommandLine.entrypoint()


if __name__ == "__main__":
    main()
