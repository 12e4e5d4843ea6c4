"""Evidence images, outside the workflow history: content-addressed by sha256, deduplicated.

One interface (`BlobStore`); files under a directory are the default. What an image is comes
from its first bytes, never from its name or the header the client sent.
"""

import asyncio
import hashlib
import io
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO, Protocol

CHUNK = 256 * 1024
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


def digest_of(source: BinaryIO) -> str:
    """The sha256 a blob of what `source` holds would be stored under, read in chunks; the
    file is left where it was."""
    start, digest = source.tell(), hashlib.sha256()
    while chunk := source.read(CHUNK):
        digest.update(chunk)
    source.seek(start)
    return digest.hexdigest()


class BlobStore(Protocol):
    async def put(self, data: bytes) -> str: ...

    async def put_file(self, source: BinaryIO) -> str:
        """Store what `source` holds from its current position, read in chunks."""
        ...

    async def delete(self, sha256: str, older_than: float) -> bool:
        """Remove a blob last stored before `older_than` (a Unix time); True if removed."""
        ...

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
        return await self.put_file(io.BytesIO(data))

    async def put_file(self, source: BinaryIO) -> str:
        return await asyncio.to_thread(self._write, source)

    def _write(self, source: BinaryIO) -> str:
        """Copied chunk by chunk into a temporary file while hashed, then renamed into place;
        bytes already stored are not written again, but their time is renewed (so a purge
        never takes a blob that a new case has just stored)."""
        self.root.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as f:
                while chunk := source.read(CHUNK):
                    digest.update(chunk)
                    f.write(chunk)
            path = self._path(digest.hexdigest())
            if path.exists():
                os.utime(path)
                Path(tmp).unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest.hexdigest()

    async def delete(self, sha256: str, older_than: float) -> bool:
        def unlink() -> bool:
            path = self._path(sha256)
            try:
                if path.stat().st_mtime >= older_than:
                    return False
                path.unlink()
            except FileNotFoundError:
                return False
            return True

        return await asyncio.to_thread(unlink)

    async def get(self, sha256: str) -> bytes | None:
        try:
            path = self._path(sha256)
        except ValueError:
            return None
        return await asyncio.to_thread(lambda: path.read_bytes() if path.exists() else None)
