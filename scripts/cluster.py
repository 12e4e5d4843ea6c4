"""The real processes of `make run` (Temporal dev server on a file, payment sandbox, worker,
API), each its own process group on free ports: the chaos suite kills -9 any of them and
starts it again as a supervisor would; the benchmarks measure them."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from workflows.ids import search_attribute_flags

ROOT = Path(__file__).resolve().parents[1]
SUPPLIER_AUTO_SHIP_SECONDS = 20  # the sandbox supplier ships this long after it sells
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Cluster:
    workdir: Path
    database_url: str
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    api_processes: int = 1  # uvicorn --workers: processes sharing the API's port
    worker_metrics: dict[str, str] = field(default_factory=dict)  # worker -> its /metrics URL

    def __post_init__(self) -> None:
        self.ports = {name: free_port() for name in ("temporal", "gateway", "supplier", "api")}

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.ports['temporal']}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "ORDERS_ENV": "dev",
            "ORDERS_DATABASE_URL": self.database_url,
            "ORDERS_GATEWAY_URL": self.gateway_url,
            "ORDERS_SUPPLIER_URL": f"http://127.0.0.1:{self.ports['supplier']}",
            "ORDERS_API_PUBLIC_URL": self.api_url,
            "ORDERS_BLOB_DIR": str(self.workdir / "blobs"),
            "ORDERS_RELAY_EVERY_SECONDS": "0.5",
            "TEMPORAL_ADDRESS": self.temporal_address,
            "TEMPORAL_NAMESPACE": "default",
            **self.extra_env,
        }

    def command(self, name: str) -> list[str]:
        if name == "temporal":
            return [
                str(BIN / "temporal"),
                "server",
                "start-dev",
                "--headless",
                "--db-filename",
                str(self.workdir / "temporal.db"),
                "--port",
                str(self.ports["temporal"]),
                "--sqlite-pragma",
                "journal_mode=WAL",
                "--sqlite-pragma",
                "synchronous=NORMAL",
                "--log-level",
                "error",
                *search_attribute_flags(),
            ]
        if name == "supplier":  # as `make run` starts it: it ships 20 s after a sale
            port = str(self.ports["supplier"])
            ship = ["--auto-ship-seconds", str(SUPPLIER_AUTO_SHIP_SECONDS)]
            return [sys.executable, "-m", "sandboxes.supplier", "--port", port, *ship]
        if name == "gateway":
            port = str(self.ports["gateway"])
            return [sys.executable, "-m", "sandboxes.payments", "--port", port]
        if name == "worker":  # the entry points a production deploy runs
            return [str(BIN / "orders-worker")]
        if name == "bare":  # the bare engine's worker (bench/)
            return [sys.executable, "-m", "bench.bare"]
        assert name == "api"
        port = str(self.ports["api"])
        return [str(BIN / "orders-api"), "--port", port, "--workers", str(self.api_processes)]

    async def start(self, name: str, as_name: str = "") -> None:
        """Start `name` (one of temporal, gateway, worker, api, bare), known as `as_name`
        when several run (worker-1, worker-2)."""
        key = as_name or name
        env = self.env()
        if name == "worker":  # each worker serves its own metrics (the SDK's and ours)
            bind = self.worker_metrics.get(key) or env.get("ORDERS_METRICS_BIND")
            self.worker_metrics[key] = env["ORDERS_METRICS_BIND"] = (
                bind or f"127.0.0.1:{free_port()}"
            )
        log = open(self.workdir / f"{key}.log", "ab")  # noqa: SIM115 - the child keeps it
        self.procs[key] = subprocess.Popen(
            self.command(name),
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        if name in self.ports:
            await self._listening(key, self.ports[name])

    async def _listening(self, name: str, port: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[name].poll() is not None:
                raise RuntimeError(f"{name} exited: {self.log_tail(name)}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.1)
        raise TimeoutError(f"{name} did not listen within {timeout} s")

    def kill(self, name: str) -> None:
        """kill -9, the whole process group: no shutdown code runs."""
        proc = self.procs[name]
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def freeze(self, name: str) -> None:
        """SIGSTOP the process group: alive, its sockets open, answering nothing."""
        os.killpg(self.procs[name].pid, signal.SIGSTOP)

    def thaw(self, name: str) -> None:
        os.killpg(self.procs[name].pid, signal.SIGCONT)

    async def restart(self, name: str) -> None:
        self.restarts[name] = self.restarts.get(name, 0) + 1
        await self.start(name.split("-")[0], as_name=name)

    async def supervise(self) -> list[str]:
        """Start again what died on its own (as systemd would); the names restarted."""
        dead = [n for n, p in self.procs.items() if p.poll() is not None]
        for name in dead:
            await self.restart(name)
        return dead

    def rss_mb(self, name: str, field: str = "VmRSS") -> float:
        """Resident memory of a process group, in MB (Linux /proc); `VmHWM`: the peak of
        each of its processes so far."""
        group, total = self.procs[name].pid, 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2]) != group:
                    continue
                status = (entry / "status").read_text()
            except OSError:
                continue
            total += next(int(x.split()[1]) for x in status.splitlines() if x.startswith(field))
        return total / 1024

    def stop_gracefully(self, name: str) -> None:
        """SIGTERM, as a deploy would: the process finishes what it holds and exits."""
        proc = self.procs[name]
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) used so far by each process group (Linux /proc)."""
        tick = os.sysconf("SC_CLK_TCK")
        groups = {p.pid: name for name, p in self.procs.items() if p.poll() is None}
        used = dict.fromkeys(groups.values(), 0.0)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            group = int(fields[2])  # pgrp: each process started its own session
            if group in groups:
                used[groups[group]] += (int(fields[11]) + int(fields[12])) / tick
        return used

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                os.killpg(proc.pid, signal.SIGCONT)  # a frozen process must run to exit
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.workdir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


DEMO = ("temporal", "gateway", "supplier", "worker", "api")


async def demo(
    workdir: Path, names: tuple[str, ...] = DEMO, env: dict[str, str] | None = None
) -> Cluster:
    """What `make run` starts, on free ports and a fresh SQLite file in `workdir`, with the
    demo catalog seeded (`make fuzz`, the docs' walk-throughs); stop it with `stop()`."""
    from scripts.seed import seed
    from store.migrate import upgrade

    url = f"sqlite+aiosqlite:///{workdir}/orders.db"
    await asyncio.to_thread(upgrade, url)
    await seed(url)
    cluster = Cluster(workdir, url, extra_env=env or {})
    try:
        for name in names:
            await cluster.start(name)
    except BaseException:
        cluster.stop()
        raise
    return cluster
