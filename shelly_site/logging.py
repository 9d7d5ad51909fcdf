"""Log output that is safe to ship (§4.1, §9): no secrets, no forged lines, ISO 8601 times.

A Shelly can only be given a URL, so its ingest token travels in the path
(`/ws/shelly/<token>/`, or `?token=`), and every server logs paths: uvicorn
("WebSocket /ws/shelly/… [accepted]" on `uvicorn.error`, even with
`--no-access-log`), daphne's access log, Django's "Not Found: …". The filter
below replaces the token with its public prefix (the 12 characters the admin
shows, `collector.models.SecretToken.prefix`) on every record that reaches our
handlers. `settings.LOGGING` routes the servers' loggers to those handlers.

Device input (a `src`, a channel key) ends up in log text; in plain-text logs
a newline in it would start a forged line, so the plain formatter escapes
control characters. JSON lines escape them by construction.
"""

import datetime
import logging
import re

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

# The public part of a token: what the admin shows as its prefix.
PUBLIC_PREFIX_LENGTH = 12
ELLIPSIS = "…"

# A path segment after /ws/shelly/ and a `token=` query value are secrets
# whatever they look like (a mistyped token is still most of a token).
_TOKEN_IN_PATH = re.compile(r"(/ws/shelly/)([^/\s?#\"'<>]+)")
_TOKEN_IN_QUERY = re.compile(r"([?&]token=)([^&\s#\"'<>]+)")
# Anything shaped like one of our secrets wherever it appears: `ing_` or
# `api_` and 43 URL-safe characters (`SecretToken.set_new_secret`), the first
# 8 of them public. Exactly that long, so identifiers such as
# `api_exception_handler` are left alone.
_TOKEN_SHAPED = re.compile(r"\b((?:ing|api)_[A-Za-z0-9_-]{8})[A-Za-z0-9_-]{35}(?![A-Za-z0-9_-])")


def public_prefix(secret: str) -> str:
    """What a log may show of a token: its admin-visible prefix, or nothing for a short string."""
    if secret.endswith(ELLIPSIS):
        return secret  # already redacted
    if len(secret) <= PUBLIC_PREFIX_LENGTH:
        return ELLIPSIS
    return secret[:PUBLIC_PREFIX_LENGTH] + ELLIPSIS


def redact_secrets(text: str) -> str:
    text = _TOKEN_IN_PATH.sub(lambda m: m.group(1) + public_prefix(m.group(2)), text)
    text = _TOKEN_IN_QUERY.sub(lambda m: m.group(1) + public_prefix(m.group(2)), text)
    return _TOKEN_SHAPED.sub(lambda m: m.group(1) + ELLIPSIS, text)


class RedactSecretsFilter(logging.Filter):
    """Replace ingest/API tokens in a record's message by their public prefix."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, dict):  # structured message: leave its shape alone
            return True
        try:
            message = record.getMessage()
        except Exception:
            return True  # a broken format string is the formatter's problem to report
        redacted = redact_secrets(message)
        if redacted != message:
            # The servers pass the path as an argument ('"WebSocket %s"'):
            # freeze the redacted text so no formatter re-expands the args.
            record.msg, record.args = redacted, ()
        return True


# C0 and C1 controls, DEL and the Unicode line/paragraph separators: anything
# that could end a log line or move the cursor in a terminal.
_CONTROL_CHARACTERS = {
    **{code: f"\\x{code:02x}" for code in [*range(0x00, 0x20), *range(0x7F, 0xA0)]},
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def escape_control_characters(text: str) -> str:
    return text.translate(_CONTROL_CHARACTERS)


class PlainFormatter(logging.Formatter):
    """One record, one line: the message's control characters escaped; tracebacks redacted.

    A traceback (added after the message) keeps its own line breaks: it is our
    code's text, not a device's.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_control_characters(record.message)
        return super().formatMessage(record)

    def formatException(self, ei) -> str:
        return redact_secrets(super().formatException(ei))


class JsonFormatter(_JsonFormatter):
    """JSON lines with `ts` in ISO 8601 (UTC, with offset), `level`, the logger, the message and extras."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("timestamp", "ts")
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        # uvicorn adds the message again with terminal colours.
        kwargs.setdefault("reserved_attrs", [*RESERVED_ATTRS, "color_message"])
        super().__init__(*args, **kwargs)

    def formatException(self, ei):
        return redact_secrets(super().formatException(ei))

    def process_log_record(self, log_data):
        # Extras are not covered by the filter, and some carry a path
        # (django.request adds the request, whose repr shows its URL).
        return {key: _redacted_value(value) for key, value in log_data.items()}


def _redacted_value(value):
    if value is None or isinstance(value, bool | int | float | datetime.datetime):
        return value
    if isinstance(value, dict):
        return {key: _redacted_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted_value(item) for item in value]
    return redact_secrets(str(value))


class RepeatedFailureLog:
    """A failing dependency logged once per interval with a count, not once per event.

    With Redis down for 20 s every committed write logged "dashboard push
    failed": 2,007 lines. Now the first failure is logged, then at most one
    line per `interval_s` saying how many failed since.
    """

    def __init__(self, logger: logging.Logger, message: str, *, event: str, interval_s: float = 60.0, clock=None):
        import threading
        import time

        self.logger, self.message, self.event, self.interval_s = logger, message, event, interval_s
        self.clock = clock or time.monotonic
        self._lock = threading.Lock()  # failures come from database threads and the event loop
        self._last_logged: float | None = None
        self._unlogged = 0

    def failed(self, error: object = None) -> None:
        now = self.clock()
        with self._lock:
            if self._last_logged is not None and now - self._last_logged < self.interval_s:
                self._unlogged += 1
                return
            count, self._unlogged, self._last_logged = self._unlogged + 1, 0, now
        self.logger.warning(
            "%s (%d time(s) since the last report): %s",
            self.message,
            count,
            error,
            extra={"event": self.event, "count": count},
        )
