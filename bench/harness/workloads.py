"""What is measured: the servers (rows) and the workloads (tables), full and --quick.

A Server is a binary and its arguments besides --listen and --framing; a Workload says what
reverb-load (or the idle client) does and which figure of a run record is its headline. The lists
here decide the matrix; cli.py narrows it with --servers and --workloads.
"""

from dataclasses import dataclass
from pathlib import Path


@dataclass
class Server:
    name: str          # row label: "reverbd-w1", "threaded", "minimal"
    binary: Path
    extra: list        # arguments besides --listen and --framing
    family: str        # "reverbd" or "baseline"


@dataclass
class Workload:
    name: str          # "closed-50"
    kind: str          # "closed", "churn", "bulk" or "idle"
    connections: int   # connections, churn slots or idle connections
    framing: str
    size: int          # payload bytes per message
    metric: str        # the headline figure's key in a run record
    unit: str          # how the headline figure reads
    higher_is_better: bool = True
    title: str = ""


def full_workloads():
    return [
        Workload("closed-1", "closed", 1, "chunk", 17, "requests_per_second", "req/s",
                 title="closed loop, 17 B, 1 connection"),
        Workload("closed-50", "closed", 50, "chunk", 17, "requests_per_second", "req/s",
                 title="closed loop, 17 B, 50 connections"),
        Workload("closed-1000", "closed", 1000, "chunk", 17, "requests_per_second", "req/s",
                 title="closed loop, 17 B, 1000 connections"),
        Workload("churn-50", "churn", 50, "chunk", 17, "connections_per_second", "conn/s",
                 title="connection churn, 50 slots (connect, 17 B request, reply, close)"),
        Workload("bulk-64k-50", "bulk", 50, "length", 65536, "mb_per_second", "MB/s",
                 title="64 KiB length-framed messages, 50 connections (MB/s of replies received)"),
        Workload("idle-10000", "idle", 10000, "chunk", 17, "rss_per_connection", "B/conn",
                 higher_is_better=False,
                 title="10,000 idle connections (server RSS per connection, after one exchange each)"),
    ]


def quick_workloads():
    return [
        Workload("closed-1", "closed", 1, "chunk", 17, "requests_per_second", "req/s",
                 title="closed loop, 17 B, 1 connection"),
        Workload("closed-50", "closed", 50, "chunk", 17, "requests_per_second", "req/s",
                 title="closed loop, 17 B, 50 connections"),
        Workload("churn-8", "churn", 8, "chunk", 17, "connections_per_second", "conn/s",
                 title="connection churn, 8 slots"),
        Workload("bulk-64k-4", "bulk", 4, "length", 65536, "mb_per_second", "MB/s",
                 title="64 KiB length-framed messages, 4 connections"),
        Workload("idle-200", "idle", 200, "chunk", 17, "rss_per_connection", "B/conn",
                 higher_is_better=False, title="200 idle connections"),
    ]
