"""results.json: the dict the harness writes, and the check that it holds what readers expect.

build_results puts the machine description (meta), the servers, the workloads, the points, the
goals, the raw run records and the micro-benchmark rows into one dict. validate_results checks
that dict (or the same dict read back from results.json) against the keys and types that
report.py, plots.py and later readers of results.json use, and returns one message per problem;
cli.py counts each one as a failure, so a schema break fails scripts/bench --quick instead of
writing a file the report cannot read.
"""

from numbers import Real

from .common import BASELINES, PERCENTILES
from .workloads import KNEE_OBJECTIVES

# Point figures that are a {median, min, max} range or None (besides the workload's metric).
RANGE_KEYS = ("server_cpu_cores", "load_cpu_cores", "other_cpu_cores", "server_cpu_us_per_request",
              "server_cpu_us_per_connection", "rss_after_kib", "threads_after")


def build_results(meta, servers, workloads, points, goal_rows, records, micro):
    """The dict written as results.json (Paths become file names or strings)."""
    return {
        "meta": meta,
        "servers": [{"name": s.name, "binary": str(s.binary.name), "args": s.extra,
                     "family": s.family} for s in servers],
        "workloads": [w.__dict__ for w in workloads],
        "points": points,
        "goals": goal_rows,
        "runs": records,
        "micro": micro,
    }


def _number(v):
    return isinstance(v, Real) and not isinstance(v, bool)


def _integer(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _text(v):
    return isinstance(v, str)


def _flag(v):
    return isinstance(v, bool)


def _optional(check):
    return lambda v: v is None or check(v)


def _text_list(v):
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _range(v):
    """A {median, min, max} of numbers with min <= median <= max, or None."""
    if v is None:
        return True
    return (isinstance(v, dict) and set(v) == {"median", "min", "max"}
            and all(_number(v[k]) for k in v) and v["min"] <= v["median"] <= v["max"])


META = {"date": _text, "host": _text, "cpu_model": _text, "nproc": _integer,
        "memory_mib": _integer, "kernel": _text, "git_commit": _text, "loadavg_at_start": _text,
        "limits": lambda v: isinstance(v, dict) and {"somaxconn", "ip_local_port_range",
                                                     "tcp_tw_reuse", "rlimit_nofile"} <= set(v),
        "command": _text, "quick": _flag, "runs": _integer, "duration": _number,
        "warmup": _number, "nice": _integer, "build_dir": _text, "build_type": _text,
        "ready_lines": lambda v: isinstance(v, dict) and all(_text_list(x) for x in v.values()),
        "failures": _text_list, "elapsed_seconds": _number}
SERVER = {"name": _text, "binary": _text, "args": _text_list,
          "family": lambda v: v in ("reverbd", "baseline")}
WORKLOAD = {"name": _text, "kind": lambda v: v in ("closed", "churn", "bulk", "idle", "knee"),
            "connections": _integer, "framing": _text, "size": _integer, "metric": _text,
            "unit": _text, "higher_is_better": _flag, "title": _text,
            "fractions": lambda v: isinstance(v, (list, tuple)) and all(_number(x) for x in v)}
KNEE_STEP = {"fraction": _number, "rate_asked": _optional(_number),
             "requests_per_second": _optional(_number),
             "latency_us": lambda v: isinstance(v, dict) and set(v) == {"p50", "p90", "p99", "p999",
                                                                        "max"}
             and all(_optional(_number)(x) for x in v.values())}
GOAL = {"server": _text, "goal": _text, "measured": _optional(_number), "met": _flag,
        "unit": lambda v: v in ("x", "B")}
RUN = {"server": _text, "workload": _text, "run": _integer, "failures": _text_list}
MICRO = {"binary": _text, "name": _text, "items_per_second": _optional(_number),
         "bytes_per_second": _optional(_number), "cv": _text, "label": _text}


def _check(problems, where, obj, spec):
    if not isinstance(obj, dict):
        problems.append(f"{where}: not an object")
        return False
    for key, ok in spec.items():
        if key not in obj:
            problems.append(f"{where}.{key}: missing")
        elif not ok(obj[key]):
            problems.append(f"{where}.{key}: unexpected value {obj[key]!r}")
    return True


def _check_list(problems, results, key, spec):
    items = results.get(key)
    if not isinstance(items, list):
        problems.append(f"{key}: missing or not a list")
        return []
    return [item for i, item in enumerate(items) if _check(problems, f"{key}[{i}]", item, spec)]


def _check_knee(problems, where, p, wl):
    """A knee point: one step per fraction, each with its figures or None; each objective's rate
    and the closed-loop maximum as ranges; the second objective's ratios."""
    steps = p.get("knee")
    if not isinstance(steps, list) or len(steps) != len(wl.get("fractions") or ()):
        problems.append(f"{where}.knee: expected one step per fraction")
        steps = []
    for i, step in enumerate(steps):
        _check(problems, f"{where}.knee[{i}]", step, KNEE_STEP)
    for key in ["closed_max"] + [field for _, _, field, _ in KNEE_OBJECTIVES]:
        if key not in p:
            problems.append(f"{where}.{key}: missing")
        elif not _range(p[key]):
            problems.append(f"{where}.{key}: not a median/min/max range")
    ratio = p.get("ratio_" + KNEE_OBJECTIVES[1][2])
    if not isinstance(ratio, dict) or set(ratio) != set(BASELINES) or \
            not all(_optional(_number)(v) for v in ratio.values()):
        problems.append(f"{where}.ratio_{KNEE_OBJECTIVES[1][2]}: expected {', '.join(BASELINES)} "
                        "(numbers or null)")


def validate_results(results):
    """Checks a results dict (built here, or read back from results.json); returns a list of
    problems, each `where: what`, empty when the dict has every key with the type its readers
    expect and every point names a known server and workload."""
    problems = []
    if not isinstance(results, dict):
        return ["results: not an object"]
    if "meta" not in results:
        problems.append("meta: missing")
    else:
        _check(problems, "meta", results["meta"], META)
    servers = {s["name"] for s in _check_list(problems, results, "servers", SERVER)
               if _text(s.get("name"))}
    workloads = {w["name"]: w for w in _check_list(problems, results, "workloads", WORKLOAD)
                 if _text(w.get("name"))}
    _check_list(problems, results, "goals", GOAL)
    _check_list(problems, results, "runs", RUN)
    _check_list(problems, results, "micro", MICRO)
    points = _check_list(problems, results, "points",
                         {"workload": _text, "server": _text, "runs": _integer,
                          "mismatches": _integer, "errors": _integer})
    for i, p in enumerate(points):
        where = f"points[{i}]"
        wl = workloads.get(p.get("workload"))
        if wl is None:
            problems.append(f"{where}.workload: {p.get('workload')!r} is not in workloads")
        elif wl["metric"] not in p:
            problems.append(f"{where}.{wl['metric']}: missing")
        elif not _range(p[wl["metric"]]):
            problems.append(f"{where}.{wl['metric']}: not a median/min/max range")
        if p.get("server") not in servers:
            problems.append(f"{where}.server: {p.get('server')!r} is not in servers")
        for key in RANGE_KEYS:
            if key not in p:
                problems.append(f"{where}.{key}: missing")
            elif not _range(p[key]):
                problems.append(f"{where}.{key}: not a median/min/max range")
        latency = p.get("latency_us")
        wanted = [k for k, _ in PERCENTILES] + ["max"]
        if not isinstance(latency, dict) or set(latency) != set(wanted) or \
                not all(_optional(_number)(v) for v in latency.values()):
            problems.append(f"{where}.latency_us: expected {', '.join(wanted)} (numbers or null)")
        if wl is not None and wl.get("kind") == "knee":
            _check_knee(problems, where, p, wl)
        for key in ("ratio", "p99_ratio"):
            r = p.get(key)
            if not isinstance(r, dict) or set(r) != set(BASELINES) or \
                    not all(_optional(_number)(v) for v in r.values()):
                problems.append(f"{where}.{key}: expected {', '.join(BASELINES)} "
                                "(numbers or null)")
    return problems
