"""Deterministic orchestration: the order saga and its helpers. No I/O here."""
