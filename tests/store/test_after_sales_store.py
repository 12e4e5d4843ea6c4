"""The store of refunds and after-sales, on both databases: refunded units back on hand once
per refund, case snapshots (newer only, listed newest first with filters and a cursor),
FAILED refunds in the ledger and their retry, and the evidence blob store."""

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest

from domain.after_sales import AfterSalesCase, CaseStatus
from domain.models import Allocation, CaseType, LineRequest, PaymentChannel, Refund
from store import cases, payments, stock
from store.blobs import FileBlobStore, sniff_image
from store.db import Database
from tests.store.helpers import (
    DEDUCT,
    LOCK,
    T0,
    add_sku,
    assert_stock_invariant,
    holds_of,
    pay,
    place,
    rows,
    stock_of,
    top_up,
    wallet_of,
)


async def return_units(db: Database, order_id: str, ref: str, units: list[Allocation]) -> None:
    async with db.transaction() as session:
        await stock.return_units(session, order_id, ref, units)


async def test_refunded_units_go_back_once_per_refund_and_the_hold_shrinks(db: Database) -> None:
    await add_sku(db, "A", policy=LOCK, stock_at={"WH-A": 5})
    await add_sku(db, "D", policy=DEDUCT, stock_at={"WH-A": 4})
    await pay(db, await place(db, "o-1", [("A", 3), ("D", 2)]))
    assert await stock_of(db, "A") == {"WH-A": (2, 0)}

    two = [Allocation(sku="A", location="WH-A", quantity=2)]
    await return_units(db, "o-1", "R1", two)
    await return_units(db, "o-1", "R1", two)  # a retried write: no second restock
    assert await stock_of(db, "A") == {"WH-A": (4, 0)}
    assert (await holds_of(db, "o-1"))[("A", "WH-A")] == (1, "DEDUCTED")

    await return_units(db, "o-1", "R2", [Allocation(sku="A", location="WH-A", quantity=1)])
    assert await stock_of(db, "A") == {"WH-A": (5, 0)}
    assert (await holds_of(db, "o-1"))[("A", "WH-A")][1] == "RESTORED"
    # a whole-package restore afterwards gives back nothing more for A (its hold is spent)
    async with db.transaction() as session:
        await stock.restore(session, "o-1", [Allocation(sku="A", location="WH-A", quantity=3)])
    assert await stock_of(db, "A") == {"WH-A": (5, 0)}
    assert await stock_of(db, "D") == {"WH-A": (2, 0)}  # untouched
    await assert_stock_invariant(db)


def a_case(
    case_id: str,
    *,
    buyer: str = "b-1",
    order_id: str = "o-1",
    minutes: int = 0,
    version: int = 1,
    status: CaseStatus = CaseStatus.WAIT_SELLER_AGREE,
) -> AfterSalesCase:
    at = T0 + timedelta(minutes=minutes)
    return AfterSalesCase(
        id=case_id,
        order_id=order_id,
        buyer_id=buyer,
        type=CaseType.REFUND_ONLY,
        status=status,
        reason="broken",
        lines=[LineRequest(sku="A", quantity=1)],
        takes=[],
        claim_cents=1_000,
        version=version,
        created_at=at,
        updated_at=at,
    )


async def save(db: Database, case: AfterSalesCase) -> None:
    async with db.transaction() as session:
        await cases.save(session, case)


async def test_a_case_snapshot_is_replaced_only_by_a_newer_version(db: Database) -> None:
    await save(db, a_case("C1", version=2, status=CaseStatus.WAIT_BUYER_RETURN))
    await save(db, a_case("C1", version=1))  # an older write arriving late changes nothing
    async with db.sessions() as session:
        got = await cases.get(session, "C1")
        missing = await cases.get(session, "C-none")
    assert got is not None and (got.version, got.status) == (2, CaseStatus.WAIT_BUYER_RETURN)
    assert missing is None
    await save(db, a_case("C1", version=3, status=CaseStatus.REFUNDED))
    assert await rows(db, "SELECT status, version FROM after_sales_cases") == [("REFUNDED", 3)]


async def test_cases_are_listed_newest_first_by_buyer_status_and_order(db: Database) -> None:
    for n in range(5):
        await save(
            db, a_case(f"C{n}", minutes=n, buyer="b-1" if n % 2 else "b-2", order_id=f"o-{n % 2}")
        )
    await save(db, a_case("C9", minutes=9, status=CaseStatus.CLOSED, version=2))

    async def ids(**kw: object) -> tuple[list[str], str | None]:
        args: dict[str, object] = {
            "buyer_id": None,
            "status": None,
            "order_id": None,
            "limit": 10,
            "cursor": None,
        } | kw
        async with db.sessions() as session:
            items, nxt = await cases.page(session, **args)  # type: ignore[arg-type]
        return [c.id for c in items], nxt

    assert (await ids())[0] == ["C9", "C4", "C3", "C2", "C1", "C0"]
    assert (await ids(buyer_id="b-1"))[0] == ["C9", "C3", "C1"]
    assert (await ids(status=CaseStatus.CLOSED))[0] == ["C9"]
    assert (await ids(order_id="o-0"))[0] == ["C4", "C2", "C0"]
    first, cursor = await ids(limit=4)
    assert first == ["C9", "C4", "C3", "C2"] and cursor is not None
    assert await ids(limit=4, cursor=cursor) == (["C1", "C0"], None)
    with pytest.raises(ValueError, match="invalid cursor"):
        await ids(cursor="not-a-cursor")


async def test_a_failed_refund_is_ledgered_and_a_successful_retry_credits_the_wallet_once(
    db: Database,
) -> None:
    await add_sku(db, "A", stock_at={"WH-A": 5})
    await top_up(db, "buyer-1", balance=10_000)
    state = await pay(db, await place(db, "o-1", [("A", 2)]), channel=PaymentChannel.BALANCE)
    assert state.payment is not None
    before = await wallet_of(db, "buyer-1")
    failed = Refund(
        id="R1",
        txn_id=state.payment.txn_id,
        channel=PaymentChannel.BALANCE,
        amount_cents=1_000,
        reason="REFUND_REQUEST",
        status="FAILED",
        created_at=T0,
    )
    shown = state.model_copy(update={"refunds": [failed]})
    async with db.transaction() as session:
        await payments.note_failed_refunds(session, shown)
        await payments.note_failed_refunds(session, shown)
    assert await rows(db, "SELECT id, status FROM refunds") == [("R1", "FAILED")]
    assert await wallet_of(db, "buyer-1") == before  # nothing moved

    done = failed.model_copy(update={"status": "SUCCEEDED"})
    for _ in range(2):  # the retry, and a retry of the retry
        async with db.transaction() as session:
            await payments.record_refund(session, "o-1", state.payment, done)
    assert await rows(db, "SELECT id, status FROM refunds") == [("R1", "SUCCEEDED")]
    assert before is not None
    assert await wallet_of(db, "buyer-1") == (before[0] + 1_000, before[1], before[2])


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xdb" + b"\x00" * 32
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 32


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (WEBP, "image/webp"),
        (b"GIF89a" + b"\x00" * 32, None),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", None),  # RIFF, but a sound
        (b"%PDF-1.7", None),
        (b"", None),
    ],
)
def test_images_are_known_by_their_bytes(data: bytes, kind: str | None) -> None:
    assert sniff_image(data) == kind


async def test_blobs_are_content_addressed_and_stored_once(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path / "blobs")
    digest = await blobs.put(PNG)
    assert digest == hashlib.sha256(PNG).hexdigest()
    assert await blobs.put(PNG) == digest
    assert [p.name for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == [digest]
    assert await blobs.get(digest) == PNG
    assert await blobs.get("0" * 64) is None
    assert await blobs.get("../../etc/passwd") is None  # not a sha256: never a path
