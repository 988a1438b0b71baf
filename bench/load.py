"""Servers the bench starts, and the two load generators it points at them.

wrk measures the most a server answers at a fixed concurrency (closed loop: each connection
sends its next request when the last is answered). `fixed_rate` sends requests at fixed times
whatever the answers' pace (open loop), and measures each from the time it was due, so a slow
answer cannot delay, and so hide, the requests behind it (coordinated omission).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import httpx

HERE = Path(__file__).resolve().parent
CLI = str(Path(sys.executable).with_name("card-checkout"))
ENV = "env_bench"
GOOD_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000002"

# The servers up now, stopped by `stop_all` whatever happens to the run.
RUNNING: list[Server] = []
# Where servers write their output (`--server-logs`; None: nowhere). The service logs each
# request with its duration as it saw it, to hold the client's figures against.
SERVER_LOGS: Path | None = None


def payment_body(invoice_id: str) -> dict[str, Any]:
    """POST /api/v1/payments for one invoice, the same body wrk's payments.lua sends."""
    return {
        "amount": "10.00", "currency": "usd", "destination_id": invoice_id,
        "destination_type": "INVOICE", "payment_method_type": "CARD",
        "process_payment": True, "payment_gateway": "stripe",
    }  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """A process serving HTTP on a free loopback port until stopped."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.port = free_port()
        output: Any = subprocess.DEVNULL
        if SERVER_LOGS is not None:
            SERVER_LOGS.mkdir(parents=True, exist_ok=True)
            output = (SERVER_LOGS / f"server-{self.port}.log").open("w")
        self.process = subprocess.Popen(
            [*command, "--port", str(self.port)],
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=HERE.parent,
        )
        if SERVER_LOGS is not None:
            output.close()  # the child has its own descriptor
        RUNNING.append(self)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"{command} did not start")
            time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self in RUNNING:
            RUNNING.remove(self)
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def stop_all() -> None:
    while RUNNING:
        RUNNING[-1].stop()


def service(url: str, **env: str) -> Server:
    """The service on `url`; its sandbox keeps its state in memory, costing the service
    nothing a remote gateway would not (cards are saved through it by `enroll`)."""
    settings = {"DATABASE_URL": url, "SANDBOX_DATABASE_URL": "memory",
                "RECONCILE_EVERY_SECONDS": "0", **env}  # fmt: skip
    return Server([CLI, "serve", "--host", "127.0.0.1"], settings)


def bare_server() -> Server:
    """The ceiling: bench/ceiling.py under the same uvicorn settings as the service."""
    command = [sys.executable, "-m", "uvicorn", "bench.ceiling:app", "--host", "127.0.0.1",
               "--no-access-log", "--log-level", "warning"]  # fmt: skip
    return Server(command, {})


def wrk(server: Server, invoice_ids: list[str], key: str, connections: int,
        seconds: float) -> dict[str, float]:  # fmt: skip
    """wrk on POST /api/v1/payments, one invoice a request: answers a second, latencies."""
    folder = tempfile.mkdtemp()
    invoices = Path(folder) / "invoices.txt"
    invoices.write_text("\n".join(invoice_ids) + "\n")
    env = {**os.environ, "INVOICES": str(invoices), "API_KEY": key, "ENVIRONMENT": ENV}
    try:
        result = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout",
             "10s", "-s", str(HERE / "payments.lua"), server.url],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
    finally:
        invoices.unlink()
        os.rmdir(folder)
    match = re.search(r"WRK_RESULT (\{.*\})", result.stdout)
    if match is None:
        raise RuntimeError(f"wrk said: {result.stdout} {result.stderr}")
    raw = json.loads(match.group(1))
    ok = raw["requests"] - raw["non_2xx"]
    return {
        "rps": ok / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "errors": raw["errors"],
        "requests": raw["requests"],
    }


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def fixed_rate(server: Server, key: str, invoice_ids: list[str], rate: float,
                     seconds: float, warm_up: float) -> dict[str, Any]:  # fmt: skip
    """Payments due at `rate` a second, each at its own fixed time, whatever the answers.

    Payment n is due at start + n / rate; it is sent then even if earlier ones are still
    unanswered, and its latency runs from that due time to its whole answer. The first
    `warm_up` seconds are sent but not recorded: they open the connections the recorded ones
    reuse, as a client's pool would be open in steady traffic (measured from a cold start,
    the client's p99 was 5 to 21 ms above the one the server logged).

    `lag` is how late the bench's own event loop sent each payment; it is inside the latency,
    and if it is large the figure is the client's, not the service's.

    aiohttp, not httpx: under load httpx's pool (httpcore 1.0.9) was seen to hold requests for
    seconds before giving them a connection, so the figure measured the client."""
    total = int(rate * (warm_up + seconds))
    if len(invoice_ids) < total:
        raise RuntimeError(f"fixed_rate needs {total} invoices, has {len(invoice_ids)}")
    skipped = int(rate * warm_up)
    bodies = [json.dumps(payment_body(i)).encode() for i in invoice_ids[:total]]
    headers = {"Authorization": f"Bearer {key}", "X-Environment-ID": ENV,
               "Content-Type": "application/json"}  # fmt: skip
    latencies: list[float] = []
    lags: list[float] = []
    statuses: Counter[str] = Counter()
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)  # one per payment in flight
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(
        base_url=server.url, headers=headers, connector=connector, timeout=timeout
    ) as session:

        async def one(body: bytes, due: float, recorded: bool) -> None:
            sent = time.perf_counter()
            try:
                async with session.post("/api/v1/payments", data=body) as response:
                    await response.read()
                    status = str(response.status)
            except (aiohttp.ClientError, TimeoutError) as error:
                status = type(error).__name__
            if recorded:
                latencies.append((time.perf_counter() - due) * 1000)
                lags.append((sent - due) * 1000)
                statuses[status] += 1

        tasks = []
        start = time.perf_counter() + 0.05
        for n, body in enumerate(bodies):
            due = start + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(body, due, n >= skipped)))
        sending = time.perf_counter() - (start + skipped / rate)  # first recorded due to last
        await asyncio.gather(*tasks)
    recorded = total - skipped
    return {
        "rate": rate,
        "sent_rate": (recorded - 1) / sending if sending > 0 else rate,
        "seconds": seconds,
        "warm_up_seconds": warm_up,
        "latencies_ms": latencies,
        "lag_p99_ms": percentile(lags, 99),
        "lag_max_ms": max(lags),
        "statuses": dict(statuses),
    }
