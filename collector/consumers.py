"""Channels consumer for devices that connect out to us (§4.1).

Thin edge: authenticate the token from the URL, accept, send the bootstrap
requests, hand every frame to a `DeviceStream` and send its replies, run the
per-connection timer, close with the right code. The rules live in
`collector.transports`, `collector.parsing` and `collector.pipeline`.
"""

import asyncio
import logging
from urllib.parse import parse_qs

from channels.db import aclose_old_connections
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from collector import metrics, outage
from collector.db import run_in_db_thread
from collector.limits import FrameRateLimiter
from collector.models import IngestToken
from collector.parsing import FrameError
from collector.transports import DeviceStream, authenticate_ingest_token_or_cached, bootstrap_frames
from shelly_site.api.throttling import failed_auth

log = logging.getLogger(__name__)

SUBPROTOCOL = "json-rpc"
CLOSE_UNAUTHORIZED = 4401
# Too many failed authentications from this address (HTTP 429's private-range twin).
CLOSE_TOO_MANY_FAILURES = 4429
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013


def raw_token(scope) -> str | None:
    """The ingest token: in the path (`ws/shelly/<token>/`, all a Shelly can be given) or `?token=`."""
    token = scope.get("url_route", {}).get("kwargs", {}).get("token")
    if token:
        return token
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[0] if values else None


def enabled_tokens(token_pks: list[int]) -> set[int]:
    return set(IngestToken.objects.filter(pk__in=token_pks, enabled=True).values_list("pk", flat=True))


class TokenWatch:
    """Which open sockets' tokens are still enabled: one query per interval for the whole process.

    A query per socket every few seconds would be hundreds a second with a
    thousand devices; here each socket asks this shared watch, which asks the
    database at most once per COLLECTOR_TOKEN_RECHECK_SECONDS for every token
    in use. A token not in the last answer's question is taken as enabled
    until the next one (it was checked when its socket connected).
    """

    def __init__(self):
        self.in_use: dict[int, int] = {}
        self.asked: set[int] = set()
        self.enabled: set[int] = set()
        self.asked_at = float("-inf")
        self.refreshing: asyncio.Future | None = None

    def add(self, token_pk: int) -> None:
        self.in_use[token_pk] = self.in_use.get(token_pk, 0) + 1

    def discard(self, token_pk: int) -> None:
        left = self.in_use.get(token_pk, 0) - 1
        if left > 0:
            self.in_use[token_pk] = left
        else:
            self.in_use.pop(token_pk, None)

    async def still_enabled(self, token_pk: int, interval: float) -> bool:
        loop = asyncio.get_running_loop()
        if self.refreshing is not None and self.refreshing.get_loop() is not loop:
            self.refreshing = None  # a new event loop (tests): start over
        if self.refreshing is None and loop.time() - self.asked_at >= interval:
            self.asked_at = loop.time()
            self.refreshing = loop.create_task(self._refresh(sorted(self.in_use)))
        if self.refreshing is not None:
            await asyncio.shield(self.refreshing)
        return token_pk not in self.asked or token_pk in self.enabled

    async def _refresh(self, token_pks: list[int]) -> None:
        try:
            self.enabled = await run_in_db_thread(enabled_tokens)(token_pks)
            self.asked = set(token_pks)
        finally:
            self.refreshing = None


token_watch = TokenWatch()


class ShellyDeviceConsumer(AsyncWebsocketConsumer):
    stream: DeviceStream | None = None
    closing = False
    timer: asyncio.Task | None = None
    limiter: FrameRateLimiter | None = None
    token_pk: int | None = None

    async def __call__(self, scope, receive, send):
        # Leaner than AsyncConsumer.__call__: no channel layer (nothing is ever
        # sent to a device connection through it, and with Redis every consumer
        # would keep a receive loop there) and no task per message.
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        # Daphne queues every frame it reads for the application without a
        # bound (its `receive` is an asyncio.Queue's get): not reading would
        # only grow that queue. uvicorn stops reading the socket instead.
        self.server_holds_back = not isinstance(getattr(receive, "__self__", None), asyncio.Queue)
        try:
            while True:
                await self.dispatch(await receive())
                # One frame per turn of the event loop. A frame's handling
                # rarely suspends (decisions in memory, writes behind), and
                # the server's receive queue returns at once while it holds
                # frames: without this, a device sending faster than we decide
                # keeps the loop to itself, and /metrics, /healthz, timers and
                # the write-behind stage's commits wait seconds behind it.
                await asyncio.sleep(0)
        except StopConsumer:
            pass
        finally:
            # Also when the consumer crashed or the server is shutting down:
            # the cached channel state must still reach the database.
            await self._end_stream()

    async def dispatch(self, message):
        # Channels closes stale DB connections before every message, a thread
        # hop that would dominate a frame's cost at thousands of frames per
        # second; the timer does it every few seconds instead.
        if message["type"] == "websocket.receive":
            # A frame over the connection's rate is dropped before it is even
            # decoded: a flooding device costs little more than reading it.
            limiter = self.limiter
            if limiter is not None and not limiter.allow(asyncio.get_running_loop().time()):
                metrics.rate_limited(self.stream.device_id if self.stream else None)
                pause = limiter.pause_seconds()
                if pause and self.server_holds_back:
                    # Not reading lets TCP slow the flooder down: dropping
                    # frames one by one still costs reading every one.
                    await asyncio.sleep(pause)
                return
            await self.websocket_receive(message)
        else:
            await super().dispatch(message)

    async def connect(self):
        offered = self.scope.get("subprotocols") or ()
        address = (self.scope.get("client") or (None,))[0]
        try:
            blocked = await run_in_db_thread(failed_auth.blocked)(address)
            token = None if blocked else await authenticate_ingest_token_or_cached(raw_token(self.scope))
        except outage.DATABASE_ERRORS:
            # Database down and a token this process has not validated lately:
            # neither accepted nor refused for good; the device retries.
            await self.accept(SUBPROTOCOL if SUBPROTOCOL in offered else None)
            log.warning("device connection deferred: database unreachable", extra={"event": "ws_deferred"})
            await self._close(CLOSE_TRY_AGAIN_LATER)
            return
        # Channels can send a custom close code only after the handshake.
        await self.accept(SUBPROTOCOL if SUBPROTOCOL in offered else None)
        if blocked:
            metrics.reject("auth_throttled", device_id=None)
            self.closing = True
            await self.close(code=CLOSE_TOO_MANY_FAILURES)
            return
        if token is None:
            log.warning("device connection refused: bad token", extra={"event": "ws_unauthorized"})
            metrics.reject("unauthorized", device_id=None)
            await run_in_db_thread(failed_auth.failed)(address)
            self.closing = True
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        self.token_pk = token.pk
        token_watch.add(token.pk)
        self.stream = DeviceStream(
            allowed_device_id=token.device.device_id if token.device_id else None, token_key=token.pk
        )
        self.limiter = FrameRateLimiter(settings.COLLECTOR_MAX_FRAMES_PER_SECOND, clock=asyncio.get_running_loop().time)
        metrics.connections_open.inc()
        log.info(
            "device connected",
            extra={"event": "ws_connected", "device_id": self.stream.device_id, "token": token.prefix},
        )
        for text in bootstrap_frames(self.stream.server_src):
            await self.send(text_data=text)
        self.timer_stop = asyncio.Event()
        self.timer = asyncio.create_task(self._tick_forever(self.stream))
        self.token_watch = asyncio.create_task(self._watch_token())

    async def receive(self, text_data=None, bytes_data=None):
        if self.stream is None or self.closing:
            return
        try:
            reply = await self.stream.handle(text_data if text_data is not None else bytes_data)
        except FrameError:  # only an oversize frame gets here
            await self._close(CLOSE_TOO_BIG)
            return
        except Exception:
            log.exception("frame handling failed", extra={"event": "ws_error", "device_id": self.stream.device_id})
            await self._close(CLOSE_INTERNAL_ERROR)
            return
        if reply is not None:
            await self.send(text_data=reply)

    async def disconnect(self, code):
        await self._end_stream()

    async def _end_stream(self):
        stream, self.stream = self.stream, None
        if stream is None:
            return
        metrics.connections_open.dec()
        token_watch.discard(self.token_pk)
        watch = getattr(self, "token_watch", None)
        if watch is not None and watch is not asyncio.current_task():
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
        if self.timer is not None:
            # Let a tick that is writing finish rather than cancel it halfway:
            # its database write runs on in a thread either way.
            self.timer_stop.set()
            await asyncio.gather(self.timer, return_exceptions=True)
        log.info("device disconnected", extra={"event": "ws_disconnected", "device_id": stream.device_id})
        try:
            await stream.close()
        except Exception:
            # The state in the database is still the last one written; the
            # sweeper closes whatever run this left open.
            log.exception("closing device stream failed", extra={"event": "ws_error"})

    async def _close(self, code):
        self.closing = True
        try:
            await self.close(code=code)
        except Exception:
            # Daphne (autobahn) lets an application send only 1000 or
            # 3000-4999; uvicorn sends 1009/1011 as asked. Same meaning in the
            # private range: 1009 -> 4009, 1011 -> 4011.
            await self.close(code=4000 + code % 1000)

    async def _watch_token(self):
        """A token disabled or deleted in the admin closes its open sockets within a few seconds (4401)."""
        while not self.closing:
            await asyncio.sleep(settings.COLLECTOR_TOKEN_RECHECK_SECONDS)
            try:
                enabled = await token_watch.still_enabled(self.token_pk, settings.COLLECTOR_TOKEN_RECHECK_SECONDS)
            except outage.DATABASE_ERRORS:
                continue  # the database is away (collector.outage reports it): keep the device
            except Exception:
                log.warning("token re-check failed", extra={"event": "ws_error"}, exc_info=True)
                continue
            if not enabled:
                device_id = self.stream.device_id if self.stream else None
                log.warning("token disabled: closing", extra={"event": "ws_token_revoked", "device_id": device_id})
                metrics.reject("token_revoked", device_id=device_id)
                await self._close(CLOSE_UNAUTHORIZED)
                return

    async def _tick_forever(self, stream: DeviceStream):
        while True:
            try:
                await asyncio.wait_for(self.timer_stop.wait(), timeout=settings.COLLECTOR_TIMER_SECONDS)
                return
            except TimeoutError:
                pass
            try:
                await aclose_old_connections()
                await stream.tick()
            except Exception:
                log.exception("timer failed", extra={"event": "ws_error", "device_id": stream.device_id})
                # The device reconnects and its state is loaded fresh from the database.
                await self._close(CLOSE_INTERNAL_ERROR)
                return
