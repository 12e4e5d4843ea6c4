"""`make run`: the Temporal dev server (Web UI :8233), the sandbox payment gateway, the
worker and the API (:8000), with state under .data/. Ctrl-C stops them all.
"""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from api.auth import Role, mint
from runtime.settings import get_settings
from scripts.cluster import SUPPLIER_AUTO_SHIP_SECONDS
from scripts.seed import DEMO_BUYER, seed
from store.migrate import upgrade
from workflows.ids import search_attribute_flags

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".data"
BIN = Path(sys.executable).parent
TEMPORAL_PORT, UI_PORT, API_PORT, GATEWAY_PORT, SUPPLIER_PORT = 7233, 8233, 8000, 8010, 8020
METRICS_PORT = 9464  # the worker's (the n-th worker's: + n - 1); the API's is /metrics


def wait_for_port(port: int, what: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with code {proc.returncode}; see .data/{what}.log")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"{what} did not open port {port} within {timeout}s")


def start(name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = open(DATA / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the child
    return subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the children as cleanly as Ctrl-C does


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    DATA.mkdir(exist_ok=True)
    settings = get_settings()
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": os.environ.get("TEMPORAL_ADDRESS", f"127.0.0.1:{TEMPORAL_PORT}"),
        "ORDERS_GATEWAY_URL": settings.gateway_url,
        "ORDERS_SUPPLIER_URL": settings.supplier_url,
        "ORDERS_API_PUBLIC_URL": settings.api_public_url,
    }
    upgrade(settings.database_url)
    print(
        "demo catalog seeded"
        if asyncio.run(seed(settings.database_url))
        else "database has data from an earlier run: keeping it"
    )
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        temporal = start(
            "temporal",
            [
                str(BIN / "temporal"),
                "server",
                "start-dev",
                "--db-filename",
                str(DATA / "temporal.db"),
                "--port",
                str(TEMPORAL_PORT),
                "--ui-port",
                str(UI_PORT),
                "--sqlite-pragma",
                "journal_mode=WAL",
                "--sqlite-pragma",
                "synchronous=NORMAL",
                "--log-level",
                "warn",
                *search_attribute_flags(),
            ],
            env,
        )
        procs.append(("temporal", temporal))
        wait_for_port(TEMPORAL_PORT, "temporal", temporal)
        gateway = start(
            "gateway",
            [sys.executable, "-m", "sandboxes.payments", "--port", str(GATEWAY_PORT)],
            env,
        )
        procs.append(("gateway", gateway))
        supplier = start(
            "supplier",
            [
                sys.executable,
                "-m",
                "sandboxes.supplier",
                "--port",
                str(SUPPLIER_PORT),
                "--auto-ship-seconds",
                str(SUPPLIER_AUTO_SHIP_SECONDS),
            ],
            env,
        )
        procs.append(("supplier", supplier))
        workers = int(os.environ.get("ORDERS_WORKERS", "1"))
        for n in range(1, workers + 1):
            name = "worker" if workers == 1 else f"worker-{n}"
            metrics = {"ORDERS_METRICS_BIND": f"127.0.0.1:{METRICS_PORT + n - 1}"}
            procs.append((name, start(name, [sys.executable, "worker.py"], env | metrics)))
        apis = int(os.environ.get("ORDERS_API_PROCESSES", "1"))
        api = start(
            "api",
            [
                *(sys.executable, "-m", "uvicorn", "api.app:app"),
                *("--host", "127.0.0.1", "--port", str(API_PORT)),
                *(("--workers", str(apis)) if apis > 1 else ()),
            ],
            env,
        )
        procs.append(("api", api))
        wait_for_port(GATEWAY_PORT, "gateway", gateway)
        wait_for_port(SUPPLIER_PORT, "supplier", supplier)
        wait_for_port(API_PORT, "api", api)
        secret = settings.jwt_secret
        print(
            f"""
Order saga is running (logs in .data/*.log). Ctrl-C stops everything.
  API docs      http://127.0.0.1:{API_PORT}/docs
  Console       http://127.0.0.1:{API_PORT}/console (sign in with $MERCHANT or $ADMIN below)
  Temporal UI   http://127.0.0.1:{UI_PORT}/namespaces/default/workflows
  Pay sandbox   http://127.0.0.1:{GATEWAY_PORT}
  Metrics       http://127.0.0.1:{API_PORT}/metrics (API)
                http://127.0.0.1:{METRICS_PORT}/metrics (worker: Temporal SDK + business)
  Supplier      http://127.0.0.1:{SUPPLIER_PORT}/orders/<supplier order id> (Kepler sandbox)
  Cancel window {settings.supplier_cancel_window_seconds} s before Kepler goods are bought

export API=http://127.0.0.1:{API_PORT}
export BUYER={mint(secret, DEMO_BUYER, Role.BUYER)}
export MERCHANT={mint(secret, "merchant-1", Role.MERCHANT)}
export ADMIN={mint(secret, "admin-1", Role.ADMIN)}
""",
            flush=True,
        )
        while all(p.poll() is None for _, p in procs):
            time.sleep(0.5)
        dead = [n for n, p in procs if p.poll() is not None]
        print(f"{', '.join(dead)} stopped unexpectedly; see .data/<name>.log", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut shutdown short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("\nstopping…", flush=True)
        for _, p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for name, p in reversed(procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop in 15 s; killing it", file=sys.stderr)
                os.killpg(p.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
