"""The API's processes share one listening socket; a connection it accepts must have
Nagle's algorithm off, or each request on a kept-alive connection waits ~40 ms."""

import asyncio
import socket

import pytest
import uvicorn

from api.app import tcp_listener


async def _nodelay_of_accepted(listener: socket.socket) -> int:
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
    try:
        _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
        nodelay = await asyncio.wait_for(accepted, 5)
        writer.close()
        return nodelay
    finally:
        server.close()


@pytest.mark.parametrize("ours", [True, False], ids=["tcp_listener", "uvicorn-bound"])
async def test_connections_on_the_shared_socket_have_nagle_off(ours: bool) -> None:
    config = uvicorn.Config("api.app:app", host="127.0.0.1", port=0, workers=2)
    listener = tcp_listener(config) if ours else config.bind_socket()
    assert (listener.proto == socket.IPPROTO_TCP) is ours
    # uvicorn's own socket is the bug this works around (if uvicorn fixes it, drop ours)
    assert bool(await _nodelay_of_accepted(listener)) is ours
