"""A private PostgreSQL server in a temporary directory, on a free port, from Debian's
binaries (/usr/lib/postgresql/<version>/bin): the fault tests kill it -9 and start it again
without touching the shared server."""

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from scripts.cluster import free_port

BINARIES = Path("/usr/lib/postgresql")
SUPERUSER = "postgres"
OS_USER = "postgres"  # initdb and postgres refuse to run as root
STARTUP_TIMEOUT = 60.0


def bin_dir() -> Path:
    """The newest installed server's binaries."""
    found = sorted(BINARIES.glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise RuntimeError(f"no PostgreSQL server under {BINARIES} (apt-get install postgresql)")
    return found[-1].parent


def _as_user() -> str | None:
    """Who runs the server: this user, or `postgres` when this is root."""
    return OS_USER if os.geteuid() == 0 else None


@dataclass
class PrivatePostgres:
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="orders-pg-")))
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, user=_as_user())

    async def init(self) -> None:
        """initdb (trust auth for local TCP) and start."""
        self.root.chmod(0o755)
        user = _as_user()
        if user is not None:
            shutil.chown(self.root, user)
        initdb = str(bin_dir() / "initdb")
        await asyncio.to_thread(
            self._run, initdb, "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8"
        )
        await self.start()

    async def start(self) -> None:
        """The postmaster in its own process group (a kill takes every backend with it)."""
        log = open(self.root / "postgres.log", "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            [
                str(bin_dir() / "postgres"),
                *("-D", str(self.data), "-p", str(self.port), "-k", str(self.root)),
                *("-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=_as_user(),
        )
        log.close()
        await self._ready()

    async def _ready(self) -> None:
        isready = str(bin_dir() / "pg_isready")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_TIMEOUT
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {self.log_tail()}")
            check = await asyncio.create_subprocess_exec(
                isready, "-h", "127.0.0.1", "-p", str(self.port), "-q"
            )
            if await check.wait() == 0:
                return
            if loop.time() > deadline:
                raise TimeoutError(f"postgres not ready within {STARTUP_TIMEOUT} s")
            await asyncio.sleep(0.1)

    def kill(self) -> None:
        """kill -9 the postmaster and every backend: clients see refused connections."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Stop for good and remove the directory."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGQUIT)  # immediate shutdown
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        path = self.root / "postgres.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
