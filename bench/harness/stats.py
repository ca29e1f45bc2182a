"""From run records to points: medians, ranges, ratios and the issue's goals.

A point is one server on one workload: the median [min, max] of each figure over the runs, the
latency percentiles' medians, the summed mismatches and errors, and the ratio of its headline
figure (and its p99) to each baseline's (minimal, minimal_uring, threaded) from the same results.
A ratio is None when the baseline is missing (minimal_uring in a build without liburing) or zero.
A knee point also keeps its sweep step by step (the medians over the runs of each step's achieved
rate and latency) and the highest rates that met each latency objective. Pure functions: no
processes, no files.
"""

import statistics

from .common import BASELINES, PERCENTILES
from .workloads import KNEE_OBJECTIVES


def median_min_max(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


# A knee step kept up with its asked rate when it completed at least this fraction of it, as
# reverb-load's --slo judges a step (kSustainedFraction in tools/load/sweep.h).
SUSTAINED_FRACTION = 0.9


def knee_rate(steps, key, limit_us):
    """The highest achieved requests/s among a sweep's steps whose latency `key` (p99, p999) is at
    most limit_us and that kept up with their asked rate; None when no step did."""
    best = None
    for s in steps:
        latency = (s.get("latency_us") or {}).get(key)
        achieved, asked = s.get("requests_per_second"), s.get("rate_asked")
        if latency is None or achieved is None or not asked:
            continue
        if latency <= limit_us and achieved >= SUSTAINED_FRACTION * asked:
            best = achieved if best is None else max(best, achieved)
    return best


def summarise_knee(runs, wl):
    """A knee point's own figures: each step's medians over the runs, the closed-loop maximum the
    fractions were taken of, and each objective's rate as median [min, max]."""
    steps = []
    for i, fraction in enumerate(wl.fractions):
        at = [r["knee"][i] for r in runs if len(r.get("knee") or []) > i]
        med = lambda values: statistics.median(values) if values else None
        steps.append({"fraction": fraction,
                      "rate_asked": med([s["rate_asked"] for s in at if s.get("rate_asked")]),
                      "requests_per_second": med([s["requests_per_second"] for s in at
                                                  if s.get("requests_per_second") is not None]),
                      "latency_us": {k: med([s["latency_us"][k] for s in at
                                             if (s.get("latency_us") or {}).get(k) is not None])
                                     for k in ("p50", "p90", "p99", "p999", "max")}})
    out = {"knee": steps, "closed_max": median_min_max([r.get("closed_max") for r in runs])}
    for _, _, field, _ in KNEE_OBJECTIVES:
        out[field] = median_min_max([r.get(field) for r in runs])
    return out


def summarise(records, servers, workloads):
    points = []
    for wl in workloads:
        by_server = {}
        for server in servers:
            runs = [r for r in records if r["workload"] == wl.name and r["server"] == server.name]
            point = {"workload": wl.name, "server": server.name, "runs": len(runs)}
            point[wl.metric] = median_min_max([r.get(wl.metric) for r in runs])
            for key in ("server_cpu_cores", "load_cpu_cores", "other_cpu_cores",
                        "server_cpu_us_per_request", "server_cpu_us_per_connection",
                        "rss_after_kib", "threads_after"):
                point[key] = median_min_max([r.get(key) for r in runs])
            lat = [r.get("latency_us") or {} for r in runs]
            point["latency_us"] = {k: (statistics.median([l[k] for l in lat if l.get(k) is not None])
                                       if any(l.get(k) is not None for l in lat) else None)
                                   for k, _ in PERCENTILES + [("max", 0)]}
            point["mismatches"] = sum(r.get("mismatches") or 0 for r in runs)
            point["errors"] = sum(r.get("errors") or 0 for r in runs)
            if wl.kind == "knee":
                point.update(summarise_knee(runs, wl))
            by_server[server.name] = point
            points.append(point)
        for point in by_server.values():
            if wl.kind == "knee":
                # The second objective's rate against each baseline's, beside the headline's.
                field = KNEE_OBJECTIVES[1][2]
                point["ratio_" + field] = {
                    base: (point[field]["median"] / by_server[base][field]["median"]
                           if point[field] and by_server.get(base, {}).get(field)
                           and by_server[base][field]["median"] else None)
                    for base in BASELINES}
            mine = point[wl.metric]
            point["ratio"] = {}
            for base in BASELINES:
                other = by_server.get(base, {}).get(wl.metric)
                point["ratio"][base] = (mine["median"] / other["median"]
                                        if mine and other and other["median"] else None)
            p99 = point["latency_us"].get("p99")
            point["p99_ratio"] = {}
            for base in BASELINES:
                other = by_server.get(base, {}).get("latency_us", {}).get("p99")
                point["p99_ratio"][base] = p99 / other if p99 and other else None
    return points


def find_point(points, workload, server):
    for p in points:
        if p["workload"] == workload and p["server"] == server:
            return p
    return None


# The io_uring goals (issue 10), for reverbd's best variant on the workload: the least ratio of its
# headline figure to each one-thread baseline.
BEST_VARIANT_GOALS = {"closed-50": (("minimal", 1.0), ("minimal_uring", 0.9)),
                      "closed-1000": (("minimal", 1.1), ("minimal_uring", 1.0))}


def best_variant(points, servers, wl):
    """reverbd's best variant on a workload: the point of the reverbd row (any backend, any worker
    count) with the best median headline figure, the first in server order on a tie; None when no
    reverbd row has the figure."""
    best = None
    for server in servers:
        p = find_point(points, wl.name, server.name) if server.family == "reverbd" else None
        if not p or not p[wl.metric]:
            continue
        m = p[wl.metric]["median"]
        if best is None or (m > best[wl.metric]["median"] if wl.higher_is_better
                            else m < best[wl.metric]["median"]):
            best = p
    return best


def goals(points, servers, workloads):
    """The issue's goals, each reverbd variant against minimal; then the io_uring goals (issue 10),
    reverbd's best variant against minimal and minimal_uring, in a row named after that variant
    (`reverbd` when none has the figure). A goal whose baseline is missing is measured as None,
    not met. Reported, never enforced."""
    names = {w.name for w in workloads}
    closed = [w.name for w in workloads if w.kind == "closed" and w.connections > 1]
    churn = [w.name for w in workloads if w.kind == "churn"]
    idle = [w.name for w in workloads if w.kind == "idle"]
    out = []
    for server in servers:
        if server.family != "reverbd":
            continue
        for wname in closed + churn:
            p = find_point(points, wname, server.name)
            r = p and p["ratio"]["minimal"]
            out.append({"server": server.name, "goal": f"{wname}: at least 1.0x minimal",
                        "measured": r, "met": r is not None and r >= 1.0, "unit": "x"})
        if "closed-50" in names:
            p = find_point(points, "closed-50", server.name)
            r = p and p["p99_ratio"]["minimal"]
            out.append({"server": server.name, "goal": "closed-50: p99 at most 1.5x minimal's",
                        "measured": r, "met": r is not None and r <= 1.5, "unit": "x"})
        for wname in idle:
            p = find_point(points, wname, server.name)
            v = p and p["rss_per_connection"] and p["rss_per_connection"]["median"]
            out.append({"server": server.name, "goal": f"{wname}: at most 4096 B RSS per connection",
                        "measured": v, "met": v is not None and v <= 4096, "unit": "B"})
    if not any(server.family == "reverbd" for server in servers):
        return out
    for wl in workloads:
        for base, least in BEST_VARIANT_GOALS.get(wl.name, ()):
            best = best_variant(points, servers, wl)
            r = best and best["ratio"][base]
            out.append({"server": best["server"] if best else "reverbd",
                        "goal": f"{wl.name}, best reverbd variant: at least {least:.1f}x {base}",
                        "measured": r, "met": r is not None and r >= least, "unit": "x"})
    return out
