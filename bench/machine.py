"""The machine under the benchmarks: other people's load, our CPU time and memory.

The benchmarks share a small machine (two cores) with other work: test suites, other
benchmarks. Everything here reads ``/proc``, so it works on Linux with a local server
and quietly does nothing otherwise (a remote ``DATABASE_URL`` server, no ``/proc``):

- ``wait_for_quiet()`` waits, before a timed statement, until other processes leave
  enough of the machine idle;
- ``other_cpu()`` measures how much CPU other processes used during a measurement, so
  that a disturbed measurement can be repeated;
- ``backend_cpu()`` and ``backend_peak_mib()`` read the CPU time and peak memory of the
  benchmark's own PostgreSQL backend, which waiting for a CPU does not inflate.

Import after ``django.setup()``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from django.db import connection

# The benchmark needs about one core (client and backend take turns). Before each timed
# statement we wait (up to QUIET_MAX_WAIT s) until other processes leave at least
# NEEDED_CORES idle.
NEEDED_CORES = 1.2
QUIET_BUSY_CORES = max((os.cpu_count() or 1) - NEEDED_CORES, 0.3)
QUIET_MAX_WAIT = 20.0

# A measurement during which the machine had less than MIN_IDLE_CORES idle on average
# (other processes plus ours) counts as disturbed: the rounds runner repeats it.
MIN_IDLE_CORES = 0.25
OTHER_LOAD_LIMIT = max((os.cpu_count() or 1) - 1 - MIN_IDLE_CORES, 0.25)

_PROC = Path("/proc")


class _State:
    postmaster_pid: int | None = None
    backend_pid: int | None = None


# (seconds waited, cores busy elsewhere when the timed statement started), one per wait
quiet_log: list[tuple[float, float]] = []


def find_postmaster() -> None:
    """Remember the local server's postmaster, to tell our CPU use from other load."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW data_directory")
            data_dir = cursor.fetchone()[0]
        _State.postmaster_pid = int((Path(data_dir) / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):  # remote server or no permission
        _State.postmaster_pid = None


def local() -> bool:
    """Whether other load can be measured: a local server and a ``/proc`` to read."""
    return _State.postmaster_pid is not None and (_PROC / "stat").exists()


def new_session() -> None:
    """Close the database connection and open a new one (no cached plans survive)."""
    connection.close()
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        _State.backend_pid = cursor.fetchone()[0]


def process_ticks() -> dict[int, tuple[int, int]]:
    """(parent pid, CPU ticks used so far) of every user-space process."""
    table = {}
    for stat in _PROC.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(stat.parent.name), int(fields[1])
        if pid != 2 and ppid != 2:  # kernel threads are children of kthreadd (pid 2)
            table[pid] = (ppid, int(fields[11]) + int(fields[12]))
    return table


def other_cpu(before: dict, after: dict) -> float:
    """CPU seconds used between two ``process_ticks()`` by processes that are neither
    this one nor the benchmark's database server (other people's work).

    Kernel threads are left out: they mostly serve our own writes and fsyncs.
    """
    ours = {os.getpid(), _State.postmaster_pid}
    ticks = 0
    for pid, (ppid, used) in after.items():
        if pid in ours or ppid in ours:
            continue
        ticks += max(0, used - before.get(pid, (0, 0))[1])
    return ticks / os.sysconf("SC_CLK_TCK")


def busy_cores(sample: float = 0.3) -> float:
    """Cores used by other people's processes, sampled over ``sample`` seconds."""
    before = process_ticks()
    time.sleep(sample)
    return other_cpu(before, process_ticks()) / sample


def wait_for_quiet() -> None:
    """Wait (up to QUIET_MAX_WAIT s) until other processes leave NEEDED_CORES idle."""
    if not local():
        return
    start = time.perf_counter()
    busy = busy_cores()
    while busy > QUIET_BUSY_CORES and time.perf_counter() - start < QUIET_MAX_WAIT:
        time.sleep(0.5)
        busy = busy_cores()
    quiet_log.append((time.perf_counter() - start, busy))


def _backend_file(name: str) -> Path | None:
    if _State.backend_pid is None:
        return None
    return _PROC / str(_State.backend_pid) / name


def backend_cpu() -> float | None:
    """CPU seconds used so far by this session's backend (local server only)."""
    stat, comm = _backend_file("stat"), _backend_file("comm")
    if stat is None or comm is None:
        return None
    try:
        text = stat.read_text()
        if not comm.read_text().startswith("postgres"):
            return None
    except OSError:  # a remote DATABASE_URL server
        return None
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backend_peak_mib() -> float | None:
    """Peak resident memory of this session's backend so far (local server only)."""
    status = _backend_file("status")
    try:
        text = status.read_text() if status else ""
    except OSError:
        return None
    if not text:
        return None
    kib = next((int(line.split()[1]) for line in text.splitlines() if line.startswith("VmHWM")), 0)
    return kib / 1024


def memory_gib() -> float | None:
    """The machine's RAM, for the description of a run."""
    try:
        for line in (_PROC / "meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return None
