"""Moving objects between two S3 endpoints: `holdfast storage migrate` beside `rclone copy`.

1. Starts two moto S3 servers (`ThreadedMotoServer`, each in its own process), `a` and `b`:
   two endpoints, so that both tools stream every byte through the client (rclone would
   copy server-side between two buckets of one remote).
2. Generates `--objects` objects of mixed sizes from `--seed` (see `sizes`), writes them to
   `a` through the S3 provider (`Storage.put`, which keeps each SHA-256 in the object's
   metadata) and records their rows in a throwaway SQLite database.
3. Runs `holdfast storage migrate --to b --concurrency C` as a process of its own (the real
   command: streamed copies, size and SHA-256 checked against the row, each upload sent with
   its SHA-256 for `b` to check, the row switched) and samples its peak resident memory.
4. Empties `b`, then runs `rclone copy a:bucket b:bucket --transfers C --checkers C` on the
   same two endpoints (rclone checks each destination first and compares MD5s after upload).
5. Prints objects/s and MB/s of each (wall clock of each process, start-up included), the
   ratio ours/rclone, and both processes' peak memory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.servers import MotoServer, start_moto_server

KB = 1000
MB = 1000 * 1000
BUCKET = "media"

# (share of the objects, smallest, largest): sizes are log-uniform within each band.
BANDS = (
    (0.75, 10 * KB, 100 * KB),
    (0.17, 100 * KB, 1 * MB),
    (0.06, 1 * MB, 8 * MB),
    (0.02, 8 * MB, 20 * MB),
)


def sizes(count: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    result = []
    for share, low, high in BANDS:
        for _ in range(round(count * share)):
            result.append(int(math.exp(rng.uniform(math.log(low), math.log(high)))))
    result = result[:count]
    while len(result) < count:
        result.append(low)
    rng.shuffle(result)
    return result


def s3_backend(moto: MotoServer) -> dict[str, Any]:
    return {
        "provider": "s3",
        "options": {
            "bucket": BUCKET,
            "endpoint_url": moto.endpoint,
            "addressing_style": "path",
            "access_key_id": "testing",
            "secret_access_key": "testing",
            "create_bucket": True,
        },
    }


def holdfast_env(work: Path, a: MotoServer, b: MotoServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOLDFAST_")}
    env.update(
        {
            "HOLDFAST_DATA_DIR": str(work / "data"),
            "HOLDFAST_DATABASE_URL": f"sqlite://{work / 'bench.sqlite3'}",
            "HOLDFAST_STORAGE__DEFAULT": "a",
            "HOLDFAST_STORAGE__BACKENDS": json.dumps({"a": s3_backend(a), "b": s3_backend(b)}),
            "HOLDFAST_LOG_LEVEL": "WARNING",
        }
    )
    return env


async def load(
    work: Path, a: MotoServer, b: MotoServer, object_sizes: list[int], seed: int
) -> None:
    """Write the objects to `a` and record them."""
    from tortoise import Tortoise, connections

    from app import nodes
    from app.db import migrate, tortoise_config
    from app.settings import Settings
    from app.storage import Storage

    settings = Settings(
        data_dir=work / "data",
        database_url=f"sqlite://{work / 'bench.sqlite3'}",
        node_id=1,
        storage={"default": "a", "backends": {"a": s3_backend(a), "b": s3_backend(b)}},
    )
    await migrate(settings)
    await Tortoise.init(config=tortoise_config(settings))
    storage = Storage(settings.storage)
    slots = asyncio.Semaphore(8)

    async def one(number: int, size: int) -> None:
        rng = random.Random(seed * 1_000_003 + number)

        async def chunks() -> AsyncIterator[bytes]:
            left = size
            while left:
                step = min(left, 1024 * 1024)
                yield rng.randbytes(step)
                left -= step

        async with slots:
            key = f"media/{number % 97:02d}/{number:05d}.bin"
            written = await storage.put(key, chunks(), content_type="application/octet-stream")
        await storage.record(connections.get("default"), written, owner_id=None)

    try:
        async with nodes.hold(settings, role="bench storage"):
            await asyncio.gather(*(one(n, size) for n, size in enumerate(object_sizes)))
    finally:
        await storage.close()
        await Tortoise.close_connections()


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_mb: float
    cpu_seconds: float
    output: str


def timed(command: list[str], env: dict[str, str], log: Path) -> Run:
    """Run `command`; its wall-clock time, peak memory and standard output."""
    started = time.monotonic()
    with log.open("w") as stderr:
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=stderr)
        peak = PeakMemory(process.pid)
        peak.start()
        assert process.stdout is not None
        output = process.stdout.read().decode()
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    peak.join()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{command[0]} exited {code}: {log.read_text()[-2000:]}")
    return Run(seconds, peak.kilobytes / 1024, usage.ru_utime + usage.ru_stime, output)


class PeakMemory(threading.Thread):
    """The peak resident memory of a process (and its own threads' buffers), from its
    VmHWM, sampled until it exits. (`wait4`'s ru_maxrss would not do: it keeps the forking
    parent's across exec.)"""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.path = Path(f"/proc/{pid}/status")
        self.kilobytes = 0

    def run(self) -> None:
        while True:
            try:
                status = self.path.read_text()
            except (FileNotFoundError, ProcessLookupError):
                return
            match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
            if match is None:  # a zombie: it has exited
                return
            self.kilobytes = max(self.kilobytes, int(match.group(1)))
            time.sleep(0.02)


def rclone_env(work: Path, a: MotoServer, b: MotoServer) -> dict[str, str]:
    # rclone's own configuration only (an AWS_CA_BUNDLE, say, would break its client).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    for name, moto in (("SRC", a), ("DST", b)):
        env.update(
            {
                f"RCLONE_CONFIG_{name}_TYPE": "s3",
                f"RCLONE_CONFIG_{name}_PROVIDER": "Other",
                f"RCLONE_CONFIG_{name}_ENDPOINT": moto.endpoint,
                f"RCLONE_CONFIG_{name}_ACCESS_KEY_ID": "testing",
                f"RCLONE_CONFIG_{name}_SECRET_ACCESS_KEY": "testing",
                f"RCLONE_CONFIG_{name}_REGION": "us-east-1",
                f"RCLONE_CONFIG_{name}_FORCE_PATH_STYLE": "true",
            }
        )
    env["RCLONE_CONFIG"] = str(work / "rclone.conf")
    (work / "rclone.conf").write_text("")
    return env


def bucket_count(moto: MotoServer) -> tuple[int, int]:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=moto.endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    count = total = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            count += 1
            total += item["Size"]
    return count, total


def create_bucket(moto: MotoServer) -> None:
    import boto3

    boto3.client(
        "s3",
        endpoint_url=moto.endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=BUCKET)


def line(name: str, objects: int, size: int, run: Run) -> str:
    return (
        f"{name:<8} {objects:>6} objects {size / MB:>9.1f} MB {run.seconds:>8.2f} s "
        f"{objects / run.seconds:>9.1f} objects/s {size / MB / run.seconds:>8.1f} MB/s "
        f"cpu {run.cpu_seconds:>6.1f} s  peak RSS {run.peak_rss_mb:>6.1f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.storage", description=__doc__)
    parser.add_argument("--objects", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None, help="kept when given")
    parser.add_argument(
        "--profile", type=Path, default=None, help="py-spy the move into this file (slower)"
    )
    args = parser.parse_args()
    rclone = shutil.which("rclone")
    if rclone is None:
        raise SystemExit("rclone is not installed: apt-get install -y rclone")
    holdfast = str(Path(sys.executable).with_name("holdfast"))
    object_sizes = sizes(args.objects, args.seed)
    total = sum(object_sizes)
    print(
        f"{len(object_sizes):,} objects, {total / MB:,.1f} MB (seed {args.seed}): "
        + ", ".join(
            f"{round(share * 100)}% {low // KB:,}-{high // KB:,} KB" for share, low, high in BANDS
        )
        + f"; largest {max(object_sizes) / MB:.1f} MB; concurrency {args.concurrency}; "
        f"{os.cpu_count()} cpus",
        flush=True,
    )
    with ExitStack() as stack:
        if args.workdir is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-storage-")))
        else:
            work = args.workdir
            work.mkdir(parents=True, exist_ok=True)
        a = stack.enter_context(start_moto_server())
        b = stack.enter_context(start_moto_server())
        started = time.monotonic()
        asyncio.run(load(work, a, b, object_sizes, args.seed))
        print(f"loaded into a in {time.monotonic() - started:.1f} s", flush=True)

        spy = (
            []
            if args.profile is None
            else [
                str(Path(sys.executable).with_name("py-spy")),
                "record",
                "--format",
                "raw",
                "--rate",
                "200",
                "--output",
                str(args.profile),
                "--",
            ]
        )
        ours = timed(
            [
                *spy,
                holdfast,
                "storage",
                "migrate",
                "--to",
                "b",
                "--concurrency",
                str(args.concurrency),
            ],
            holdfast_env(work, a, b),
            work / "migrate.log",
        )
        copied = re.search(r"copied ([\d,]+) objects", ours.output)
        assert copied, ours.output
        assert int(copied.group(1).replace(",", "")) == len(object_sizes), ours.output
        assert bucket_count(b) == (len(object_sizes), total)
        print(ours.output.strip().splitlines()[0], flush=True)

        b.reset(timeout=60)
        create_bucket(b)
        theirs = timed(
            [
                rclone,
                "copy",
                f"src:{BUCKET}",
                f"dst:{BUCKET}",
                "--transfers",
                str(args.concurrency),
                "--checkers",
                str(args.concurrency),
                "--stats",
                "0",
            ],
            rclone_env(work, a, b),
            work / "rclone.log",
        )
        assert bucket_count(b) == (len(object_sizes), total)

    print(line("holdfast", len(object_sizes), total, ours))
    print(line("rclone", len(object_sizes), total, theirs))
    ratio = theirs.seconds / ours.seconds
    print(
        f"ratio holdfast/rclone (throughput): {ratio:.2f}   target 0.8: "
        f"{'met' if ratio >= 0.8 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
