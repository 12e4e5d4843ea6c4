"""The API's edges, in process with Temporal unreachable: actions answer 503
TEMPORAL_UNAVAILABLE with Retry-After (never a 500) while reads keep working; /docs loads
nothing from outside; the OpenAPI document lists every problem answer; unknown query
parameters are refused."""

import re
from collections.abc import AsyncIterator

import httpx

from api.auth import Role, mint
from runtime.settings import Settings
from store.db import Database
from tests.store.helpers import add_sku, place

ADDRESS = {"name": "Li", "phone": "+86 1", "line1": "1 Rd", "city": "HZ", "country": "CN"}


async def test_actions_answer_503_and_reads_keep_working(
    api: httpx.AsyncClient, settings: Settings, sqlite_db: Database
) -> None:
    await add_sku(sqlite_db, "TEA")
    stored = await place(sqlite_db, "o-1", [("TEA", 1)], buyer="b-1")
    buyer = {"Authorization": f"Bearer {mint(settings.jwt_secret, 'b-1', Role.BUYER)}"}

    placing = {"lines": [{"sku": "TEA", "quantity": 1}], "address": ADDRESS}
    r = await api.post("/orders", json=placing, headers=buyer | {"Idempotency-Key": "k-1"})
    assert (r.status_code, r.headers["Retry-After"]) == (503, "5"), r.text
    # placed in the database before its workflow: the answer names it, and the same key
    # again is the same order (nothing more is placed)
    placed = r.json()["order_id"]
    assert r.json()["code"] == "TEMPORAL_UNAVAILABLE" and placed in r.json()["detail"]
    again = await api.post("/orders", json=placing, headers=buyer | {"Idempotency-Key": "k-1"})
    assert (again.status_code, again.json()["order_id"]) == (503, placed)
    for method, path, body in [
        ("POST", "/orders/o-1/pay", {"channel": "balance"}),
        ("POST", "/orders/o-1/cancel", {}),
    ]:
        r = await api.request(method, path, json=body, headers=buyer)
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] == "5"
        assert r.json()["code"] == "TEMPORAL_UNAVAILABLE"

    r = await api.get("/orders/o-1", headers=buyer)
    assert r.status_code == 200 and r.json()["version"] == stored.version
    listed = [o["id"] for o in (await api.get("/orders", headers=buyer)).json()["items"]]
    assert sorted(listed) == sorted(["o-1", placed])
    assert (await api.get("/skus/TEA")).status_code == 200


async def test_the_docs_page_loads_nothing_from_outside(api: httpx.AsyncClient) -> None:
    """/docs works offline: every script, style and icon it names is served by the API."""
    page = await api.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert assets, page.text
    assert all(a.startswith("/") for a in assets), assets  # no CDN, no other host
    for asset in assets:
        assert (await api.get(asset)).status_code == 200, asset
    assert "http://" not in page.text and "https://" not in page.text
    spec = (await api.get("/openapi.json")).json()
    assert "/orders/{order_id}/after-sales" in spec["paths"]


async def test_every_operation_documents_its_problem_answers(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    problem = {"$ref": "#/components/schemas/Problem"}
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            for status in ("422", "503"):
                content = op["responses"][status]["content"]
                assert content == {"application/problem+json": {"schema": problem}}, (path, method)
    pay = spec["paths"]["/orders/{order_id}/pay"]["post"]
    assert {"401", "403", "404", "409"} <= set(pay["responses"])
    channel = spec["components"]["schemas"]["PayBody"]["properties"]["channel"]
    assert sorted(channel["enum"]) == ["balance", "credit"]  # only what /pay accepts
    # the catalog's reads take a token or none (a token shows staff more); writes need one
    assert spec["paths"]["/skus"]["get"]["security"] == [{}, {"HTTPBearer": []}]
    assert spec["paths"]["/skus/{sku}"]["put"]["security"] == [{"HTTPBearer": []}]
    assert set(spec["components"]["securitySchemes"]) == {"HTTPBearer", "PartnerSignature"}


async def test_the_document_names_every_answer_an_edge_can_give(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    paths = spec["paths"]

    def statuses(method: str, path: str) -> set[str]:
        return set(paths[path][method]["responses"])

    assert "400" in statuses("post", "/orders")  # MALFORMED_BODY
    assert "429" in statuses("post", "/orders")  # TOO_MANY_UNPAID_ORDERS
    assert "415" in statuses("post", "/orders/{order_id}/after-sales")
    assert "502" in statuses("post", "/orders/{order_id}/payment-intents")
    for hook in ("/webhooks/payments", "/webhooks/carriers", "/webhooks/suppliers/kepler"):
        assert {"401", "404", "422"} <= statuses("post", hook), hook
        assert paths[hook]["post"]["security"] == [{"PartnerSignature": []}]
    scheme = spec["components"]["securitySchemes"]["PartnerSignature"]
    assert (scheme["in"], scheme["name"]) == ("header", "X-Signature")
    image = paths["/after-sales/{case_id}/images/{sha256}"]["get"]["responses"]["200"]
    assert list(image["content"]) == ["image/*"]


async def test_an_unknown_query_parameter_is_refused(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    buyer = {"Authorization": f"Bearer {mint(settings.jwt_secret, 'b-1', Role.BUYER)}"}
    r = await api.get("/orders", params={"limit": 5, "colour": "red"}, headers=buyer)
    assert (r.status_code, r.json()["code"], r.json()["unknown"]) == (422, "VALIDATION", ["colour"])
    assert (await api.get("/orders", params={"limit": 5}, headers=buyer)).status_code == 200
    r = await api.get("/after-sales", params={"statuss": "CLOSED"}, headers=buyer)
    assert r.status_code == 422 and "statuss" in r.json()["detail"]
    assert (await api.get("/skus", params={"page": 2})).status_code == 422


async def test_anyone_sees_availability_and_only_staff_see_stock_on_hand(
    api: httpx.AsyncClient, settings: Settings, sqlite_db: Database
) -> None:
    await add_sku(sqlite_db, "TEA", stock_at={"WH-A": 5, "WH-B": 3})
    await place(sqlite_db, "o-1", [("TEA", 2)], buyer="b-1")  # locks 2 at one location

    def token(role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {mint(settings.jwt_secret, f'{role}-1', role)}"}

    for headers in ({}, token(Role.BUYER)):
        body = (await api.get("/skus/TEA", headers=headers)).json()
        assert body["available"] == 6
        assert {(s["location"], s["on_hand"], s["locked"]) for s in body["stock"]} == {
            ("WH-A", None, None),
            ("WH-B", None, None),
        }
        listed = (await api.get("/skus", headers=headers)).json()
        assert all(s["on_hand"] is None for sku in listed for s in sku["stock"])
    for role in (Role.MERCHANT, Role.ADMIN):
        body = (await api.get("/skus/TEA", headers=token(role))).json()
        assert sorted((s["on_hand"], s["locked"]) for s in body["stock"]) in (
            [(3, 0), (5, 2)],
            [(3, 2), (5, 0)],
        )
    forged = {"Authorization": "Bearer not-a-token"}
    assert (await api.get("/skus/TEA", headers=forged)).status_code == 401


async def test_a_strangers_upload_is_refused_before_its_body_is_read(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    """Evidence uploads may be large (48 MB): one without a valid token is a 401 before a
    byte of it is read, so strangers cannot make the API hold their bodies."""
    sent: list[int] = []

    async def body(megabytes: int) -> AsyncIterator[bytes]:
        for _ in range(megabytes):
            sent.append(1)
            yield b"x" * 1_048_576

    for headers in ({}, {"Authorization": "Bearer forged"}, {"Authorization": "Basic eA=="}):
        sent.clear()
        r = await api.post(
            "/orders/o-1/after-sales",
            content=body(40),
            headers=headers | {"Content-Type": "multipart/form-data; boundary=x"},
        )
        assert (r.status_code, r.json()["code"]) == (401, "UNAUTHENTICATED"), r.text
        assert len(sent) <= 1  # at most what the transport read ahead, never the 40 MB
    buyer = {"Authorization": f"Bearer {mint(settings.jwt_secret, 'b-1', Role.BUYER)}"}
    sent.clear()
    r = await api.post(
        "/orders/o-1/after-sales",
        content=body(8),
        headers=buyer | {"Content-Type": "multipart/form-data; boundary=x"},
    )
    # a buyer's upload is read: here the form parser finds no part in it
    assert (r.status_code, r.json()["code"]) == (400, "MALFORMED_BODY") and len(sent) >= 1
