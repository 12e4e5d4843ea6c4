"""FastAPI: turns HTTP calls into messages to order workflows. No business rules here."""
