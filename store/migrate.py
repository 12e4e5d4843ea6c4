"""Bring a database to the latest schema: `python -m store.migrate [URL]`."""

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parent.parent


def upgrade(url: str, revision: str = "head") -> None:
    if url.startswith("sqlite") and ":///" in url:
        Path(url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["url"] = url
    command.upgrade(cfg, revision)


def main() -> None:
    """`orders-migrate [URL]`: ORDERS_DATABASE_URL (or URL) to the latest schema."""
    from runtime.settings import get_settings

    upgrade(sys.argv[1] if len(sys.argv) > 1 else get_settings().database_url)


if __name__ == "__main__":
    main()
