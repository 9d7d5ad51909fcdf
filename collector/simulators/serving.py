"""How the simulated devices serve their local HTTP RPC (aiohttp), in one place."""

import socket

from aiohttp import web


async def serve(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, int]:
    """Serve `app` on host:port (0: a free port); returns the runner (cleanup() stops it) and the port.

    No signal handlers (the simulator's process owns them), no access log,
    a short shutdown so Ctrl-C is prompt.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner, sock.getsockname()[1]
