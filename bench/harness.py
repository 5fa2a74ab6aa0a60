"""What the benchmark scripts share: running SQL, timing, rounds, tables, the run's setting.

- ``measure()`` times one operation: wall time, CPU time of the client and of its
  PostgreSQL backend, and the CPU other processes used meanwhile (``bench/machine.py``).
- ``run_rounds()`` is the interleaved-rounds runner: every variant once per round, in
  an order rotated between rounds, each from a fresh state its ``setup`` makes; a
  measurement disturbed by other load is repeated. Ratios are then taken per round
  against the baseline variant of the same round (``ratios()``), and tables give the
  median of those per-round ratios with their range (``ratio_table()``).
- ``warm_times()`` times a read: untimed warm-up runs, then the timed ones.
- ``describe_environment()`` records the server, the machine and the code measured.

Import after ``django.setup()``.
"""

from __future__ import annotations

import gc
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import django
from django.db import connection

from audit_app import sql as audit_sql
from bench import machine

REPO_ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------
# Database and progress


def log(message: str) -> None:
    """A timestamped progress line on stderr, so stdout keeps only the results."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def execute(statement: str, params: Any = None) -> list[tuple]:
    """Run one statement on the default connection; its rows, if it returns any."""
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def q(name: str) -> str:
    """Quote an SQL identifier."""
    return audit_sql.quote(name)


# ---------------------------------------------------------------------------------------
# Timing


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def wall_time(operation: Callable[[], Any]) -> float:
    """Wall seconds of one call."""
    start = time.perf_counter()
    operation()
    return time.perf_counter() - start


def warm_times(operation: Callable[[], Any], runs: int, warmup: int = 2) -> list[float]:
    """Milliseconds of ``runs`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        operation()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        operation()
        times.append((time.perf_counter() - start) * 1000)
    return times


@dataclass(frozen=True)
class Measurement:
    wall: float
    cpu: float | None  # client + backend CPU seconds; None when not measurable
    client: float
    backend: float | None
    other: float | None  # cores used by other processes meanwhile; None if unknown


def measure(operation: Callable[[], Any]) -> Measurement:
    """Wall seconds, CPU seconds (client + backend) and other load during one call."""
    local = machine.local()
    # Like timeit: no cyclic garbage collection inside the timed part (its cost depends
    # on everything the process allocated before, not on the variant measured).
    gc.collect()
    before = machine.process_ticks() if local else {}
    gc.disable()
    server0, client0, start = machine.backend_cpu(), time.process_time(), time.perf_counter()
    try:
        operation()
    finally:
        wall = time.perf_counter() - start
        gc.enable()
    client, server = time.process_time() - client0, machine.backend_cpu()
    cpu = None if server0 is None or server is None else client + server - server0
    other = machine.other_cpu(before, machine.process_ticks()) / wall if local else None
    backend = None if cpu is None else cpu - client
    return Measurement(wall=wall, cpu=cpu, client=client, backend=backend, other=other)


# ---------------------------------------------------------------------------------------
# Interleaved rounds

# A disturbed measurement (see machine.OTHER_LOAD_LIMIT) is repeated from a new setup,
# up to MAX_ATTEMPTS times; the attempt with the least other load counts.
MAX_ATTEMPTS = 3

# (name, setup returning the state, operation timed on that state)
Variant = tuple[str, Callable[[], Any], Callable[[Any], Any]]
Times = dict[str, list[float]]

disturbed: list[dict] = []  # every measurement over the limit, kept or repeated


def rotated(items: Sequence[Any], round_index: int) -> list[Any]:
    """``items`` in the order of round ``round_index``: rotated by one per round."""
    shift = round_index % len(items)
    return [*items[shift:], *items[:shift]]


@dataclass
class Rounds:
    """Wall and CPU seconds per variant, one value per round."""

    times: Times
    cpu_times: Times
    cpu_measurable: bool
    # (client, backend) CPU seconds per variant, one pair per round
    splits: dict[str, list[tuple[float, float | None]]] = field(default_factory=dict)

    @property
    def cpu(self) -> Times | None:
        return self.cpu_times if self.cpu_measurable else None


def _measure_least_disturbed(title: str, name: str, r: int, variant: Variant) -> Measurement:
    _, setup, operation = variant
    best: Measurement | None = None
    for attempt in range(1, MAX_ATTEMPTS + 1):
        state = setup()
        result = measure(lambda op=operation, st=state: op(st))
        del state
        if best is None or (result.other or 0.0) < (best.other or 0.0):
            best = result
        if result.other is None or result.other <= machine.OTHER_LOAD_LIMIT:
            break
        disturbed.append(
            {
                "scenario": title,
                "variant": name,
                "round": r + 1,
                "attempt": attempt,
                "other_cores": result.other,
                "wall": result.wall,
            }
        )
        log(f"{title} {name}: other load {result.other:.2f} cores, measuring again")
    assert best is not None
    return best


def run_rounds(title: str, variants: list[Variant], rounds: int) -> Rounds:
    """Run every variant once per round, rotating their order between rounds."""
    result = Rounds(
        times={name: [] for name, _, _ in variants},
        cpu_times={name: [] for name, _, _ in variants},
        cpu_measurable=True,
        splits={name: [] for name, _, _ in variants},
    )
    for r in range(rounds):
        for variant in rotated(variants, r):
            name = variant[0]
            best = _measure_least_disturbed(title, name, r, variant)
            result.splits[name].append((best.client, best.backend))
            result.times[name].append(best.wall)
            result.cpu_times[name].append(best.cpu or 0.0)
            result.cpu_measurable = result.cpu_measurable and best.cpu is not None
        summary = ", ".join(
            f"{name} {result.times[name][-1]:.3f}s/{result.cpu_times[name][-1]:.2f}cpu"
            for name, _, _ in variants
        )
        log(f"{title} round {r + 1}/{rounds}: {summary}")
    return result


def ratios(times: Times, name: str, base: str) -> list[float]:
    """Per-round ratios of ``name`` against ``base`` measured in the same round."""
    return [t / b for t, b in zip(times[name], times[base], strict=True)]


def ratio_text(values: Sequence[float]) -> str:
    """Median of per-round ratios, with their range."""
    return f"{statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f})"


def ratio_summary(values: Sequence[float], prefix: str = "") -> dict[str, float]:
    """Median, min and max of per-round ratios, for --json."""
    return {
        f"{prefix}ratio_median": statistics.median(values),
        f"{prefix}ratio_min": min(values),
        f"{prefix}ratio_max": max(values),
    }


# ---------------------------------------------------------------------------------------
# Tables


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str = "") -> None:
    """Print a table as Markdown with aligned columns (first column left, others right)."""
    if title:
        print(f"\n## {title}\n")
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(3, *(len(row[i]) for row in cells)) for i in range(len(headers))]

    def line(row: list[str], header: bool = False) -> str:
        parts = [
            c.ljust(w) if i == 0 or header else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return " | ".join(parts).rstrip()

    print(line(cells[0], header=True))
    print(" | ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))


@dataclass
class RatioTable:
    """A scenario's variants against its baseline, measured by ``run_rounds``."""

    title: str
    rounds: Rounds
    base: str
    units: dict[str, int]  # operations per variant run: rows, saves...
    unit: str
    labels: dict[str, str] = field(default_factory=dict)
    targets: dict[str, str] = field(default_factory=dict)
    # Ratios against another variant of the same rounds (e.g. the floor), per variant.
    also_against: str | None = None
    also_for: Sequence[str] = ()
    show_cpu_split: bool = False

    def print(self) -> dict[str, dict[str, Any]]:
        """Print the table; return it as data for --json."""
        times, cpu, base = self.rounds.times, self.rounds.cpu, self.base
        extra_headers = []
        if self.also_against:
            extra_headers.append(f"ratio vs {self.also_against}")
            if cpu:
                extra_headers.append(f"CPU ratio vs {self.also_against}")
        split = self.show_cpu_split and all(
            b is not None for runs in self.rounds.splits.values() for _, b in runs
        )
        if split:
            extra_headers += [f"client CPU us/{self.unit}", f"backend CPU us/{self.unit}"]
        headers = ["variant", "median s", f"us/{self.unit}", f"ratio vs {base}", "target"]
        headers += extra_headers
        if cpu:
            headers.append("CPU ratio (client+backend)")
        data, rows = {}, []
        for name, values in times.items():
            row_data, cells = self._row(name, values, split)
            data[name] = row_data
            rows.append(cells)
        print_table(headers, rows, self.title)
        return data

    def _row(self, name: str, values: list[float], split: bool) -> tuple[dict, list[str]]:
        times, cpu, base = self.rounds.times, self.rounds.cpu, self.base
        mid = statistics.median(values)
        r = ratios(times, name, base)
        data: dict[str, Any] = {
            "median_s": mid,
            "us_per_unit": mid / self.units[name] * 1e6,
            **ratio_summary(r),
            "times": values,
        }
        cells = [
            self.labels.get(name, name),
            f"{mid:.3f}",
            f"{data['us_per_unit']:.1f}",
            "1.00" if name == base else ratio_text(r),
            self.targets.get(name, ""),
        ]
        if self.also_against:
            against = self.also_against
            if name in self.also_for:
                fr = ratios(times, name, against)
                data.update(ratio_summary(fr, f"{against}_"))
                cells.append(ratio_text(fr))
                if cpu:
                    fc = ratios(cpu, name, against)
                    data.update(ratio_summary(fc, f"{against}_cpu_"))
                    cells.append(ratio_text(fc))
            else:
                cells += [""] * (2 if cpu else 1)
        if split:
            runs = self.rounds.splits[name]
            client = statistics.median(c for c, _ in runs) / self.units[name] * 1e6
            backend = statistics.median(b for _, b in runs) / self.units[name] * 1e6
            data.update(client_cpu_us=client, backend_cpu_us=backend)
            cells += [f"{client:.0f}", f"{backend:.0f}"]
        if cpu:
            rc = ratios(cpu, name, base)
            data.update(
                cpu_median_s=statistics.median(cpu[name]),
                **ratio_summary(rc, "cpu_"),
                cpu_times=cpu[name],
            )
            cells.append("1.00" if name == base else ratio_text(rc))
        return data, cells


# ---------------------------------------------------------------------------------------
# The run's setting: server, machine, code

SERVER_SETTINGS = (
    "shared_buffers",
    "max_wal_size",
    "maintenance_work_mem",
    "autovacuum",
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "work_mem",
    "hash_mem_multiplier",
    "jit",
    "max_parallel_workers_per_gather",
)


def repo_commit() -> str:
    """The commit of the code measured (a COMMIT file beside bench/ wins, for snapshots)."""
    snapshot = REPO_ROOT / "COMMIT"
    if snapshot.exists():
        return snapshot.read_text().strip()
    git = REPO_ROOT / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        if (git / ref).exists():
            return (git / ref).read_text().strip()
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    except OSError:
        pass
    return "unknown"


def describe_environment() -> dict[str, Any]:
    """The server's version and settings, the machine, the software and the commit."""
    import psycopg

    facts: dict[str, Any] = {
        "postgresql": execute("SELECT split_part(version(), ' on ', 1)")[0][0],
    }
    facts.update({name: execute(f"SHOW {name}")[0][0] for name in SERVER_SETTINGS})
    facts["jit_available"] = execute("SELECT pg_jit_available()")[0][0]
    memory = machine.memory_gib()
    facts.update(
        cpus=os.cpu_count(),
        memory_gib=None if memory is None else round(memory, 1),
        python=sys.version.split()[0],
        django=django.get_version(),
        psycopg=psycopg.__version__,
        commit=repo_commit(),
    )
    return facts


def print_environment(title: str, facts: dict[str, Any]) -> None:
    """The heading of a run's output: what was measured where."""
    print(f"# {title}\n")
    memory = f", {facts['memory_gib']} GiB RAM" if facts.get("memory_gib") else ""
    print(
        f"{facts['postgresql']}, Django {facts['django']}, psycopg {facts['psycopg']}, "
        f"Python {facts['python']}, {facts['cpus']} CPUs{memory}"
    )
    settings = ", ".join(f"{name}={facts[name]}" for name in SERVER_SETTINGS)
    print(f"server: {settings}, jit_available={facts['jit_available']}")
    print(f"code at commit {facts['commit']}")


def print_quiet_summary(elapsed: float) -> dict[str, Any]:
    """How long the run waited for a quiet machine, and how often it went ahead anyway."""
    busy = [b for _, b in machine.quiet_log]
    print(
        f"\nTotal time {elapsed:.0f}s. Quiet gate: {len(machine.quiet_log)} waits, "
        f"{sum(w for w, _ in machine.quiet_log):.0f}s spent waiting for other load to stop; "
        f"{sum(b > machine.QUIET_BUSY_CORES for b in busy)} went ahead anyway with more than "
        f"{machine.QUIET_BUSY_CORES} cores busy elsewhere "
        f"(median busy at start {statistics.median(busy or [0]):.2f})."
    )
    return {"quiet_gate": machine.quiet_log}


def print_load_summary(elapsed: float) -> dict[str, Any]:
    """The measurements repeated because of other load, then the quiet gate's summary."""
    kept = sum(1 for d in disturbed if d["attempt"] == MAX_ATTEMPTS)
    print(
        f"\nOther load: {len(disturbed)} measurements had other processes using more "
        f"than {machine.OTHER_LOAD_LIMIT:.2f} cores and were repeated; {kept} of them "
        f"still were after {MAX_ATTEMPTS} attempts (the least disturbed attempt was kept)."
    )
    return {**print_quiet_summary(elapsed), "disturbed": disturbed}


def other_benchmark_running(script: str) -> bool:
    """Whether another process runs ``script`` (e.g. ``bench/tracking.py``)."""
    found = subprocess.run(  # noqa: S603 (a fixed command, our own argument)
        ["pgrep", "-f", script],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    return bool([pid for pid in found if int(pid) != os.getpid()])
