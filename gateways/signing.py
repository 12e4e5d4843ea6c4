"""Partner callback signatures.

Contract: header ``X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`` where the HMAC is
computed with the sender's secret over ``"<t>.<raw body>"``. During a secret rotation the
sender may put several ``v1=`` entries in one header (one per secret); the signature is
valid if any of them matches. Unknown schemes (e.g. ``v0=``) are ignored.

Replay protection by event id is the receiver's job; this module only bounds the age.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Literal

SIGNATURE_HEADER = "X-Signature"
MAX_AGE_SECONDS = 300

_MAX_HEADER_LENGTH = 4096
_MAX_SIGNATURES = 8

SignatureErrorCode = Literal["missing", "malformed", "expired", "future", "mismatch"]


class SignatureError(Exception):
    """The callback signature is missing or not acceptable.

    ``reason`` is a human-readable explanation; ``code`` is a stable machine value.
    """

    def __init__(self, code: SignatureErrorCode, reason: str) -> None:
        super().__init__(reason)
        self.code: SignatureErrorCode = code
        self.reason = reason


def _digest(body: bytes, secret: str, timestamp: int) -> str:
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """Return the ``X-Signature`` header value for ``body``."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={_digest(body, secret, t)}"


def _parse(header: str) -> tuple[int, list[str]]:
    if len(header) > _MAX_HEADER_LENGTH:
        raise SignatureError("malformed", "malformed X-Signature header: too long")
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep or not value:
            raise SignatureError("malformed", f"malformed X-Signature header: bad item {item!r}")
        if key == "t":
            if timestamp is not None or not (value.isascii() and value.isdigit()):
                raise SignatureError("malformed", "malformed X-Signature header: bad timestamp")
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value.lower())
    if timestamp is None:
        raise SignatureError("malformed", "malformed X-Signature header: no t= timestamp")
    if not signatures:
        raise SignatureError("malformed", "malformed X-Signature header: no v1= signature")
    if len(signatures) > _MAX_SIGNATURES:
        raise SignatureError("malformed", "malformed X-Signature header: too many signatures")
    return timestamp, signatures


def verify(header: str | None, body: bytes, secret: str, now: float | None = None) -> None:
    """Check ``header`` against ``body``; raise :class:`SignatureError` if not acceptable."""
    if header is None or not header.strip():
        raise SignatureError("missing", "missing X-Signature header")
    timestamp, signatures = _parse(header)
    current = time.time() if now is None else now
    age = current - timestamp
    if age > MAX_AGE_SECONDS:
        raise SignatureError(
            "expired", f"signature expired: {int(age)} s old (max {MAX_AGE_SECONDS} s)"
        )
    if -age > MAX_AGE_SECONDS:
        raise SignatureError(
            "future",
            f"signature timestamp {int(-age)} s in the future (max {MAX_AGE_SECONDS} s)",
        )
    expected = _digest(body, secret, timestamp).encode("ascii")
    # Check every candidate (no early exit) so timing does not reveal which one matched.
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected, candidate.encode("utf-8"))
    if not matched:
        raise SignatureError("mismatch", "signature mismatch")
