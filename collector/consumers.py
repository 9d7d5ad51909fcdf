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

from collector import metrics
from collector.db import run_in_db_thread
from collector.parsing import FrameError
from collector.transports import DeviceStream, authenticate_ingest_token, bootstrap_frames

log = logging.getLogger(__name__)

SUBPROTOCOL = "json-rpc"
CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011


def raw_token(scope) -> str | None:
    """The ingest token: in the path (`ws/shelly/<token>/`, all a Shelly can be given) or `?token=`."""
    token = scope.get("url_route", {}).get("kwargs", {}).get("token")
    if token:
        return token
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[0] if values else None


class ShellyDeviceConsumer(AsyncWebsocketConsumer):
    stream: DeviceStream | None = None
    closing = False
    timer: asyncio.Task | None = None

    async def __call__(self, scope, receive, send):
        # Leaner than AsyncConsumer.__call__: no channel layer (nothing is ever
        # sent to a device connection through it, and with Redis every consumer
        # would keep a receive loop there) and no task per message.
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
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
            await self.websocket_receive(message)
        else:
            await super().dispatch(message)

    async def connect(self):
        offered = self.scope.get("subprotocols") or ()
        token = await run_in_db_thread(authenticate_ingest_token)(raw_token(self.scope))
        # Channels can send a custom close code only after the handshake.
        await self.accept(SUBPROTOCOL if SUBPROTOCOL in offered else None)
        if token is None:
            log.warning("device connection refused: bad token", extra={"event": "ws_unauthorized"})
            metrics.reject("unauthorized", device_id=None)
            self.closing = True
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        self.stream = DeviceStream(allowed_device_id=token.device.device_id if token.device_id else None)
        metrics.connections_open.inc()
        log.info(
            "device connected",
            extra={"event": "ws_connected", "device_id": self.stream.device_id, "token": token.prefix},
        )
        for text in bootstrap_frames(self.stream.server_src):
            await self.send(text_data=text)
        self.timer_stop = asyncio.Event()
        self.timer = asyncio.create_task(self._tick_forever(self.stream))

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
