"""The API's memory under large uploads and invented methods, measured on a real API
process (its peak resident memory, /proc's VmHWM): bodies are counted as they stream, never
buffered whole; a stranger's upload is refused before it is read, and a buyer's files go to
disk as they arrive; an invented HTTP method adds no metric series."""

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from api.auth import Role, mint
from runtime.settings import DEV_SECRETS
from scripts.cluster import BIN, Cluster
from tests.e2e.test_e2e_production import command

pytestmark = pytest.mark.e2e

MB = 1_048_576
UPLOAD_MB = 40
BOUNDARY = "edge-test-boundary"


async def multipart(megabytes: int) -> AsyncIterator[bytes]:
    """A case form whose one image part is `megabytes` long, sent chunked (no length)."""
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="type"\r\n\r\nREFUND_ONLY\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="reason"\r\n\r\nbroken\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="lines"\r\n\r\n'
        f'[{{"sku": "TEA", "quantity": 1}}]\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="images"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    yield b"\x89PNG\r\n\x1a\n"
    for _ in range(megabytes):
        yield bytes(MB)
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


async def test_large_uploads_and_invented_methods_do_not_grow_the_api(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/orders.db")
    buyer = {"Authorization": f"Bearer {mint(DEV_SECRETS['jwt_secret'], 'b-mem', Role.BUYER)}"}
    try:
        await asyncio.to_thread(command, str(BIN / "orders-migrate"), env=cluster.env())
        await cluster.start("temporal")
        await cluster.start("api")
        async with httpx.AsyncClient(base_url=cluster.api_url, timeout=120) as http:

            async def upload(headers: dict[str, str], megabytes: int) -> httpx.Response:
                return await http.post(
                    f"/orders/o-{uuid.uuid4().hex[:8]}/after-sales",
                    content=multipart(megabytes),
                    headers=headers | {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
                )

            # warm: every code path below has run once, at a size that rolls over to disk
            assert (await upload({}, 2)).status_code == 401
            assert (await upload(buyer, 2)).status_code == 404
            base = cluster.rss_mb("api", "VmHWM")

            strangers = await asyncio.gather(*(upload({}, UPLOAD_MB) for _ in range(4)))
            assert [r.json()["code"] for r in strangers] == ["UNAUTHENTICATED"] * 4
            forged = {"Authorization": "Bearer " + "x" * 200}
            assert (await upload(forged, UPLOAD_MB)).json()["code"] == "UNAUTHENTICATED"

            # a buyer's: read to the end (to disk), then its image is too large for a case
            buyers = await asyncio.gather(*(upload(buyer, UPLOAD_MB) for _ in range(4)))
            assert [(r.status_code, r.json()["code"]) for r in buyers] == [
                (413, "PAYLOAD_TOO_LARGE")
            ] * 4, [r.text for r in buyers]
            # past the upload limit (48 MB), refused while it streams
            over = await upload(buyer, 60)
            assert (over.status_code, over.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")
            grown = cluster.rss_mb("api", "VmHWM") - base

            # invented methods add no label sets: the exposition and memory stay as they were
            # (300 such requests took an API from 222 to 418 MB before labels were fixed)
            await http.request("X-FIRST", "/orders/0")  # the OTHER label set, made once
            await http.get("/metrics")  # and the scrape's own
            size = len((await http.get("/metrics")).content)
            rss = cluster.rss_mb("api")
            for n in range(300):
                await http.request(f"X{n}-{uuid.uuid4().hex}", f"/orders/{n}")
            assert len((await http.get("/metrics")).content) < size + 200  # counts, no series
            metrics_grown = cluster.rss_mb("api") - rss
        print(f"peak memory grew by {grown:.1f} MB; invented methods: {metrics_grown:.1f} MB")
        assert grown < UPLOAD_MB, f"the API's peak memory grew by {grown:.1f} MB"
        assert metrics_grown < 10, f"300 invented methods grew the API by {metrics_grown:.1f} MB"
    finally:
        cluster.stop()


EXPORT_ROWS = 100_000


def _fill_orders(path: Path, count: int) -> None:
    """`count` orders written straight into the database (the export reads stored rows)."""
    snapshot = '{"paid_cents": 1500, "refunded_cents": 0, "note": "' + "x" * 300 + '"}'
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO orders (id, buyer_id, status, total_cents, version, snapshot,"
            " created_at, updated_at, paid_at) VALUES (?, ?, 'PENDING_SHIPMENT', 1500, 3, ?,"
            " ?, ?, ?)",
            (
                (
                    f"{n:020x}",
                    f"b-{n % 977}",
                    snapshot,
                    f"2026-03-01 12:{n // 6000 % 60:02d}:{n // 100 % 60:02d}.{n % 1000000:06d}",
                    "2026-03-01 12:00:00.000000",
                    "2026-03-01 13:00:00.000000",
                )
                for n in range(count)
            ),
        )


async def test_an_export_of_100000_orders_streams_without_growing_the_api(tmp_path: Path) -> None:
    db = tmp_path / "orders.db"
    cluster = Cluster(tmp_path, f"sqlite+aiosqlite:///{db}")
    merchant = mint(DEV_SECRETS["jwt_secret"], "m-mem", Role.MERCHANT)
    headers = {"Authorization": f"Bearer {merchant}"}
    try:
        await asyncio.to_thread(command, str(BIN / "orders-migrate"), env=cluster.env())
        await asyncio.to_thread(_fill_orders, db, EXPORT_ROWS)
        await cluster.start("temporal")
        await cluster.start("api")
        async with httpx.AsyncClient(base_url=cluster.api_url, timeout=300) as http:
            warm = await http.get("/orders/export.csv?buyer_id=b-1", headers=headers)
            assert len(warm.text.splitlines()) == 1 + len(range(1, EXPORT_ROWS, 977))
            base = cluster.rss_mb("api", "VmHWM")
            lines, size, ids = 0, 0, set()
            async with http.stream("GET", "/orders/export.csv", headers=headers) as answer:
                assert answer.status_code == 200
                async for line in answer.aiter_lines():
                    lines, size = lines + 1, size + len(line)
                    ids.add(line.split(",", 1)[0])
            grown = cluster.rss_mb("api", "VmHWM") - base
        print(f"exported {lines - 1} orders ({size / MB:.1f} MB); peak memory grew {grown:.1f} MB")
        assert lines == EXPORT_ROWS + 1 and len(ids) == EXPORT_ROWS + 1  # the header, each once
        assert grown < 25, f"the API's peak memory grew by {grown:.1f} MB"
    finally:
        cluster.stop()
