"""Logs are safe to ship: no token, no forged line, ISO 8601 times (§4.1, §9).

The real servers the README names (uvicorn, daphne) run as processes; the test
greps what they wrote.
"""

import asyncio
import datetime
import json
import logging

import httpx
import pytest
import websockets

from collector.models import Device, IngestToken
from shelly_site.logging import (
    JsonFormatter,
    PlainFormatter,
    RedactSecretsFilter,
    escape_control_characters,
    redact_secrets,
)
from tests.servers import daphne_argv, free_port, process_env, running, uvicorn_argv

TOKEN = "ing_" + "A1b2C3d4" + "x" * 35
PREFIX = TOKEN[:12]
FORGED = "2026-01-01 00:00:00,000 ERROR forged line"


def test_a_token_in_a_device_path_is_logged_as_its_public_prefix():
    line = f'127.0.0.1:5000 - "WebSocket /ws/shelly/{TOKEN}/" [accepted]'
    assert redact_secrets(line) == f'127.0.0.1:5000 - "WebSocket /ws/shelly/{PREFIX}…/" [accepted]'


def test_a_token_in_the_query_string_or_anywhere_else_is_redacted():
    assert redact_secrets(f"GET /ws?token={TOKEN}&x=1") == f"GET /ws?token={PREFIX}…&x=1"
    assert redact_secrets(f"key {TOKEN} refused") == f"key {PREFIX}… refused"
    assert redact_secrets("api_" + "k" * 43) == "api_" + "k" * 8 + "…"


def test_names_that_merely_start_like_a_token_are_left_alone():
    text = "api_exception_handler failed in api_throttle_ingest_rate_limiter_setting"
    assert redact_secrets(text) == text


def test_a_short_wrong_token_in_a_path_is_not_shown_at_all():
    assert redact_secrets("/ws/shelly/hunter2/") == "/ws/shelly/…/"


def test_redacting_twice_changes_nothing_more():
    once = redact_secrets(f"/ws/shelly/{TOKEN}/ and /ws?token={TOKEN}")
    assert redact_secrets(once) == once


def test_control_characters_are_escaped_and_printable_text_kept():
    assert escape_control_characters("a\nb\r\x1b[31mc\u2028é €") == "a\\nb\\r\\x1b[31mc\\u2028é €"


def record(message, *args, exc_info=None):
    return logging.LogRecord("collector.bad_input", logging.WARNING, __file__, 1, message, args, exc_info)


def test_plain_lines_escape_device_text_so_a_newline_cannot_forge_a_line():
    formatter = PlainFormatter("%(levelname)s %(message)s")
    line = formatter.format(record("bad input from %s", f"evil\n{FORGED}"))
    assert line == f"WARNING bad input from evil\\n{FORGED}"
    assert "\n" not in line


def test_the_filter_redacts_the_arguments_a_server_logs_its_path_with():
    rec = record('%s - "WebSocket %s" [accepted]', "127.0.0.1:1", f"/ws/shelly/{TOKEN}/")
    assert RedactSecretsFilter().filter(rec)
    assert rec.getMessage() == f'127.0.0.1:1 - "WebSocket /ws/shelly/{PREFIX}…/" [accepted]'


def test_json_lines_have_an_iso_8601_ts_and_redacted_extras():
    formatter = JsonFormatter("%(levelname)s %(name)s %(message)s")
    rec = record("Not Found: %s", "/x")
    rec.request = f"<ASGIRequest: GET '/ws/shelly/{TOKEN}/'>"
    data = json.loads(formatter.format(rec))
    ts = datetime.datetime.fromisoformat(data["ts"])
    assert ts.utcoffset() == datetime.timedelta(0)
    assert abs(ts.timestamp() - rec.created) < 0.001
    assert (data["level"], data["logger"], data["message"]) == ("WARNING", "collector.bad_input", "Not Found: /x")
    assert TOKEN not in data["request"] and PREFIX in data["request"]


def test_a_traceback_is_redacted_too():
    try:
        raise ValueError(f"cannot open /ws/shelly/{TOKEN}/")
    except ValueError as exc:
        rec = record("failed", exc_info=(type(exc), exc, exc.__traceback__))
    assert TOKEN not in PlainFormatter().format(rec)
    assert TOKEN not in JsonFormatter().format(rec)


# -- real servers -------------------------------------------------------------


async def talk_like_a_device_and_a_stranger(base_ws: str, token: str) -> None:
    """A device connects by path and by query; a frame carries a forged line; a browser GETs the device URL."""
    async with websockets.connect(f"{base_ws}/ws/shelly/{token}/") as ws:
        # The token is bound to another device: the frame is refused and logged with its src.
        await ws.send(json.dumps({"src": f"evil\n{FORGED}", "method": "NotifyStatus", "params": {}}))
        await asyncio.sleep(0.5)
    async with websockets.connect(f"{base_ws}/ws?token={token}") as ws:
        await asyncio.sleep(0.2)
    async with httpx.AsyncClient() as client:
        await client.get(base_ws.replace("ws://", "http://") + f"/ws/shelly/{token}/")
    await asyncio.sleep(0.3)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("log_json", [False, True], ids=["plain", "json"])
@pytest.mark.parametrize("server", ["uvicorn", "daphne"])
def test_no_server_log_line_contains_a_token(server, log_json, tmp_path):
    device = Device.objects.create(device_id="shellypro4pm-a8032ab10001")
    token = IngestToken(name="logs", device=device)
    raw = token.set_new_secret()
    token.save()
    port = free_port()
    argv = uvicorn_argv(port) if server == "uvicorn" else daphne_argv(port)
    log_path = tmp_path / f"{server}.log"
    env = process_env(LOG_LEVEL="INFO", LOG_JSON=str(log_json).lower())

    with running(argv, env=env, log_path=log_path, port=port):
        asyncio.run(talk_like_a_device_and_a_stranger(f"ws://127.0.0.1:{port}", raw))

    output = log_path.read_text()
    lines = output.splitlines()
    assert raw not in output
    assert raw[12:] not in output  # not even the secret part alone
    path_lines = [line for line in lines if f"/ws/shelly/{token.prefix}" in line]
    assert path_lines, output  # the server did log the device's path, redacted
    rejected = [line for line in lines if "wrong_device" in line]
    assert len(rejected) == 1, output
    assert not any(line.startswith(FORGED) for line in lines)
    if log_json:
        records = [json.loads(line) for line in lines]  # every line is one JSON object
        assert all(datetime.datetime.fromisoformat(r["ts"]).tzinfo is not None for r in records)
        assert f"evil\n{FORGED}" in next(r["message"] for r in records if "wrong_device" in r["message"])
    else:
        assert f"evil\\n{FORGED}" in rejected[0]
