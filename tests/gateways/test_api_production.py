"""The API outside dev shows the public no more than it must: no /docs or /openapi.json
(unless ORDERS_PUBLIC_DOCS), /metrics an admin's, /readyz only ready or not; and no request
can grow the metrics' label sets (an invented method is OTHER)."""

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest

from api.app import create_app
from api.auth import Role, mint
from gateways.payments import PaymentGatewayClient
from runtime.settings import DEV_SECRETS, Settings
from runtime.temporal_client import connect
from store.db import Database

SECRETS = {n: f"prod-{n}-0123456789abcdef0123456789" for n in DEV_SECRETS}
Api = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def api(sqlite_db: Database, gateway: PaymentGatewayClient) -> Api:
    @asynccontextmanager
    async def started(**settings: object) -> AsyncIterator[httpx.AsyncClient]:
        dead = await connect(target_host="127.0.0.1:9", namespace="default")
        app = create_app(Settings(**settings), temporal=dead, db=sqlite_db, gateway=gateway)  # type: ignore[arg-type]
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://api") as http,
        ):
            yield http

    return started


def bearer(role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(SECRETS['jwt_secret'], f'{role}-1', role)}"}


async def test_production_keeps_docs_metrics_and_readiness_details_to_itself(api: Api) -> None:
    async with api(env="prod", **SECRETS) as http:
        assert (await http.get("/docs")).status_code == 404
        assert (await http.get("/openapi.json")).status_code == 404
        assert (await http.get("/metrics")).status_code == 401
        assert (await http.get("/metrics", headers=bearer(Role.MERCHANT))).status_code == 403
        admin = await http.get("/metrics", headers=bearer(Role.ADMIN))
        assert admin.status_code == 200 and "orders_api_requests_total" in admin.text
        ready = await http.get("/readyz")
        assert (ready.status_code, ready.json()) == (503, {"status": "unavailable"})
    async with api(env="prod", public_docs=True, **SECRETS) as http:
        assert (await http.get("/openapi.json")).status_code == 200
        assert (await http.get("/docs")).status_code == 200


async def test_development_shows_them_all(api: Api) -> None:
    async with api(env="dev") as http:
        assert (await http.get("/openapi.json")).status_code == 200
        assert (await http.get("/metrics")).status_code == 200
        ready = (await http.get("/readyz")).json()
        assert ready["status"] == "unavailable" and ready["temporal"].startswith("unavailable")


async def test_invented_methods_add_no_label_sets_to_the_metrics(api: Api) -> None:
    async with api(env="dev") as http:
        for i in range(50):
            await http.request(f"X{i}", "/orders")
        await http.request("X-ANOTHER", "/nowhere/at/all")
        text = (await http.get("/metrics")).text
    assert "X0" not in text and "X49" not in text and "X-ANOTHER" not in text
    assert 'method="OTHER",route="/orders"' in text
    assert 'method="OTHER",route="unmatched"' in text
