"""Serving an ASGI app in process on a free 127.0.0.1 port (end-to-end tests, benchmarks)."""

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

STARTUP_TIMEOUT = 30.0


def listening_socket() -> socket.socket:
    """Bound before the app is built, so its URL is known and no other process takes it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()
    return f"http://{host}:{port}"


@asynccontextmanager
async def serving(app: FastAPI, sock: socket.socket, name: str) -> AsyncIterator[None]:
    """Run uvicorn as a task until the block ends; enter only once its lifespan has run."""
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"uvicorn-{name}")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT
    while not server.started:  # uvicorn offers a flag, not an event: watch it, bounded
        if task.done():
            task.result()  # re-raise the startup failure
            raise RuntimeError(f"{name} server stopped during startup")
        if loop.time() > deadline:
            raise TimeoutError(f"{name} server did not start in {STARTUP_TIMEOUT} s")
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        await task
