"""Evidence images, outside the workflow history: content-addressed by sha256, deduplicated.

One interface (`BlobStore`); files under a directory are the default. What an image is comes
from its first bytes, never from its name or the header the client sent.
"""

import asyncio
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAGIC: list[tuple[str, bytes, int]] = [
    ("image/jpeg", b"\xff\xd8\xff", 0),
    ("image/png", b"\x89PNG\r\n\x1a\n", 0),
    ("image/webp", b"WEBP", 8),  # RIFF....WEBP
]


def sniff_image(data: bytes) -> str | None:
    """The image type by magic bytes: JPEG, PNG or WebP; None for anything else."""
    for kind, magic, at in MAGIC:
        if data[at : at + len(magic)] == magic and (kind != "image/webp" or data[:4] == b"RIFF"):
            return kind
    return None


class BlobStore(Protocol):
    async def put(self, data: bytes) -> str: ...

    async def get(self, sha256: str) -> bytes | None: ...


class FileBlobStore:
    """`root/ab/abcdef…`: written to a temporary file, then renamed (never half a blob)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, sha256: str) -> Path:
        if not SHA256.match(sha256):
            raise ValueError("not a sha256")
        return self.root / sha256[:2] / sha256

    async def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        await asyncio.to_thread(self._write, self._path(digest), data)
        return digest

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        if path.exists():
            return  # the same bytes already stored
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def get(self, sha256: str) -> bytes | None:
        try:
            path = self._path(sha256)
        except ValueError:
            return None
        return await asyncio.to_thread(lambda: path.read_bytes() if path.exists() else None)
