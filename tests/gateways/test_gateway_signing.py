"""Callback signature contract: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest

from gateways.signing import MAX_AGE_SECONDS, SIGNATURE_HEADER, SignatureError, sign, verify

BODY = b'{"event_id":"evt_1","amount_cents":1999}'
SECRET = "s3cret"
T = 1_700_000_000


def _reason(header: str | None, body: bytes = BODY, secret: str = SECRET, now: float = T) -> str:
    with pytest.raises(SignatureError) as info:
        verify(header, body, secret, now=now)
    assert str(info.value) == info.value.reason
    return info.value.code


def test_constants() -> None:
    assert SIGNATURE_HEADER == "X-Signature"
    assert MAX_AGE_SECONDS == 300


def test_sign_matches_contract() -> None:
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(BODY, SECRET, timestamp=T) == f"t={T},v1={expected}"


def test_round_trip_with_default_clock() -> None:
    header = sign(BODY, SECRET)
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)
    verify(header, BODY, SECRET)


def _accepted(header: str, now: float = T) -> bool:
    verify(header, BODY, SECRET, now=now)  # raises SignatureError when refused
    return True


def test_age_limits_are_inclusive() -> None:
    header = sign(BODY, SECRET, timestamp=T)
    assert _accepted(header, now=T + MAX_AGE_SECONDS)
    assert _accepted(header, now=T - MAX_AGE_SECONDS)


def test_expired() -> None:
    assert _reason(sign(BODY, SECRET, timestamp=T), now=T + MAX_AGE_SECONDS + 1) == "expired"


def test_future_dated() -> None:
    assert _reason(sign(BODY, SECRET, timestamp=T), now=T - MAX_AGE_SECONDS - 1) == "future"


def test_tampered_body() -> None:
    header = sign(BODY, SECRET, timestamp=T)
    assert _reason(header, body=BODY.replace(b"1999", b"1")) == "mismatch"


def test_tampered_timestamp() -> None:
    header = sign(BODY, SECRET, timestamp=T).replace(f"t={T}", f"t={T + 1}")
    assert _reason(header) == "mismatch"


def test_wrong_secret() -> None:
    assert _reason(sign(BODY, "other", timestamp=T)) == "mismatch"


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing(header: str | None) -> None:
    assert _reason(header) == "missing"


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        "t=abc,v1=00",
        "t=-5,v1=00",
        f"v1={'0' * 64}",
        f"t={T}",
        f"t={T},t={T},v1={'0' * 64}",
        f"t={T},v1=",
        f"t={T}," + ",".join(["v1=00"] * 9),
        "t=" + "9" * 5000 + ",v1=00",
    ],
)
def test_malformed(header: str) -> None:
    assert _reason(header) == "malformed"


def test_rotated_secrets_any_v1_entry_matches() -> None:
    old = sign(BODY, "old-secret", timestamp=T).split(",")[1]
    new = sign(BODY, "new-secret", timestamp=T).split(",")[1]
    header = f"t={T},{old},{new}"
    verify(header, BODY, "old-secret", now=T)
    verify(header, BODY, "new-secret", now=T)
    assert _reason(header, secret="third-secret") == "mismatch"


def test_unknown_schemes_are_ignored_and_hex_case_insensitive() -> None:
    v1 = sign(BODY, SECRET, timestamp=T).split("v1=")[1]
    assert _accepted(f"t={T}, v0=deadbeef, v1={v1.upper()}")
