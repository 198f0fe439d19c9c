"""Province-size road network: build, file, load (memory-mapped) and query, beside their targets.

Run ``python bench/province.py`` (15 M OSM-like nodes; tens of minutes on 2 shared cores, ~10 GB
peak) or ``python bench/province.py --nodes 1000000`` (a minute or two). The network is generated:
a grid of junctions ~1.3 km apart whose roads bend through 0-12 shape nodes each (about 90% of
the nodes, as in OpenStreetMap), with a hierarchy of road classes, missing links and one-way
roads. It goes through the real build path (:meth:`RoadNetwork.from_arcs`, as ``greenchannel
roads import`` does after reading the PBF) in a child process whose peak RSS is the build's.
Then two serving processes map the file at once and rank facilities for random origins.

Baselines measured in the same run: the load as it was before (``np.load`` copying every array
and a k-d tree for snapping, per process), the same queries on that copied network, and (at most
2 M nodes, or with ``--baseline-build``) the build without collapsing the shape nodes.
Nothing is asserted; the figures are printed with PASS/MISS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# This directory holds bench/routing.py: make ``import routing`` find the package.
_ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _ROOT / "bench"]
sys.path.insert(0, str(_ROOT))

import numpy as np  # noqa: E402

from routing import FacilitySnapshot, Policy, Requirements, RoadNetwork, Router, rank  # noqa: E402

SEED = 20261203
TARGET_BUILD_MIN = 30.0  # "in minutes"
TARGET_PEAK_GB = 24.0  # the machine
TARGET_LOAD_S = 0.1  # "much less than a second"
TARGET_P99_MS = 1.0
REQ = Requirements(maternal_level=3, capabilities=frozenset({"adult_icu"}))


def mark(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def province_arcs(nodes: int, seed: int) -> dict[str, np.ndarray]:
    """About ``nodes`` nodes: junctions on a perturbed grid, roads bending through shape nodes."""
    rng = np.random.default_rng(seed)
    mean_bends = 6.0
    side = max(3, round((nodes / (1 + 1.7 * mean_bends)) ** 0.5))
    nj = side * side
    spacing = 0.012  # degrees, ~1.3 km between junctions
    idx = np.arange(nj).reshape(side, side)
    rows, cols = idx // side, idx % side
    jlat = 23.0 + rows.ravel() * spacing + rng.normal(0, spacing * 0.1, nj)
    jlon = 108.0 + cols.ravel() * spacing * 1.08 + rng.normal(0, spacing * 0.1, nj)
    a = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    b = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
    line = np.concatenate([rows[:, :-1].ravel(), cols[:-1, :].ravel()])
    speed = np.full(a.shape[0], 30.0)
    for every, kmh in ((4, 40.0), (8, 60.0), (24, 80.0), (72, 110.0)):
        speed[line % every == 0] = kmh
    keep = (speed > 30.0) | (rng.random(a.shape[0]) < 0.8)
    a, b, speed = a[keep], b[keep], speed[keep]
    e = a.shape[0]
    bends = rng.integers(0, int(2 * mean_bends) + 1, e)
    total_shape = int(bends.sum())
    # each road e: a, shape nodes nj + start[e] .. + bends[e] - 1, b
    start = np.zeros(e, np.int64)
    np.cumsum(bends[:-1], out=start[1:])
    road = np.repeat(np.arange(e), bends)
    pos = np.arange(total_shape) - start[road] + 1  # 1..bends
    frac = pos / (bends[road] + 1)
    wiggle = spacing * 0.05
    slat = jlat[a[road]] + frac * (jlat[b[road]] - jlat[a[road]])
    slon = jlon[a[road]] + frac * (jlon[b[road]] - jlon[a[road]])
    slat += rng.normal(0, wiggle, total_shape)
    slon += rng.normal(0, wiggle, total_shape)
    lat = np.concatenate([jlat, slat])
    lon = np.concatenate([jlon, slon])
    del slat, slon, frac
    # segments: a -> s1 -> ... -> sk -> b for every road
    seg_road = np.repeat(np.arange(e), bends + 1)
    first = np.zeros(e, np.int64)
    np.cumsum(bends[:-1] + 1, out=first[1:])
    k = np.arange(seg_road.shape[0]) - first[seg_road]  # segment number on its road
    shape_id = nj + start[seg_road] + k  # the shape node the segment ends at (if k < bends)
    last = k == bends[seg_road]
    tail = np.where(k == 0, a[seg_road], shape_id - 1)
    head = np.where(last, b[seg_road], shape_id)
    del shape_id, k, first, last
    coslat = np.cos(np.radians(23.0 + side * spacing / 2))
    length = np.hypot(
        (lat[tail] - lat[head]) * 111_195.0, (lon[tail] - lon[head]) * 111_195.0 * coslat
    )
    tt = length / (speed[seg_road] / 3.6) * rng.uniform(0.9, 1.1, seg_road.shape[0])
    one_way = ((speed == 30.0) & (rng.random(e) < 0.05))[seg_road]
    two = ~one_way
    return {
        "node_id": np.arange(lat.shape[0], dtype=np.int64) + 1,
        "lat": lat,
        "lon": lon,
        "tail": np.concatenate([tail, head[two]]),
        "head": np.concatenate([head, tail[two]]),
        "travel_time": np.concatenate([tt, tt[two]]),
        "length": np.concatenate([length, length[two]]),
    }


def facilities_for(net: RoadNetwork, seed: int) -> list[FacilitySnapshot]:
    """2,000 facilities on random road nodes, 300 of them meeting :data:`REQ`."""
    rng = np.random.default_rng(seed)
    nodes = rng.choice(net.node_count, 2000, replace=False)
    out = []
    for i, node in enumerate(nodes.tolist()):
        level = 3 if i < 300 else int(rng.integers(1, 3))
        caps = {"adult_icu", "caesarean_24h", "blood_transfusion"} if level == 3 else set()
        out.append(
            FacilitySnapshot(
                code=f"H{i:04d}",
                name=f"Hospital {i}",
                lat=float(net.lat[node]),
                lon=float(net.lon[node]),
                maternal_level=level,
                neonatal_level=min(level, 3),
                capabilities=frozenset(caps),
            )
        )
    return out


# -- child processes ---------------------------------------------------------------------------
def child_build(nodes: int, path: str, collapse: bool) -> None:
    t0 = time.perf_counter()
    arcs = province_arcs(nodes, SEED)
    gen_s = time.perf_counter() - t0
    gen_peak = peak_rss_mb()
    print(
        f"  generated {arcs['lat'].shape[0]:,} nodes, {arcs['tail'].shape[0]:,} arcs in "
        f"{gen_s:.1f} s (peak {gen_peak:.0f} MB)",
        file=sys.stderr,
        flush=True,
    )
    shown: dict[str, int] = {}

    def progress(stage: str, fraction: float) -> None:
        step = int(fraction * 10)
        if shown.get(stage, -1) < step:
            shown[stage] = step
            print(
                f"  [{time.perf_counter() - t0:7.1f} s] {stage}: {fraction:4.0%}",
                file=sys.stderr,
                flush=True,
            )

    t1 = time.perf_counter()
    net = RoadNetwork.from_arcs(**arcs, collapse_chains=collapse, progress=progress)
    build_s = time.perf_counter() - t1
    del arcs
    t2 = time.perf_counter()
    figures = {
        "build_s": build_s,
        "gen_s": gen_s,
        "gen_peak_mb": gen_peak,
        "peak_mb": peak_rss_mb(),
    }
    size = net.save(path, build={"bench": figures}) if path else 0
    save_s = time.perf_counter() - t2
    r = net.report
    print(
        json.dumps(
            {
                "gen_s": gen_s,
                "gen_peak_mb": gen_peak,
                "build_s": build_s,
                "ch_s": r.ch_seconds,
                "save_s": save_s,
                "peak_mb": peak_rss_mb(),
                "nodes": r.nodes,
                "arcs": r.arcs,
                "ch_nodes": r.ch_nodes,
                "ch_arcs": int(net.ch["arc_w"].shape[0]),
                "size": size,
            }
        ),
        flush=True,
    )


def _recorded(path: str) -> dict[str, Any]:
    """The build figures a previous run stored in the file's manifest."""
    import zipfile

    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    r = manifest["report"]
    return {
        **manifest["build"]["bench"],
        "ch_s": r["ch_seconds"],
        "save_s": float("nan"),
        "nodes": r["nodes"],
        "arcs": r["arcs"],
        "ch_nodes": r["ch_nodes"],
        "ch_arcs": manifest["arrays"]["ch_arc_w"]["shape"][0],
        "size": os.path.getsize(path),
    }


def _copy_load(path: str) -> RoadNetwork:
    """The load as it was before: every array copied out of the file, the k-d tree built."""
    from scipy.spatial import cKDTree

    from routing.geo import to_xyz
    from routing.network import _ARRAYS, _CH_ARRAYS, ImportReport

    with np.load(path, allow_pickle=False) as data:
        manifest = json.loads(bytes(data["manifest.json"]))
        arrays = {k: data[k] for k in _ARRAYS}
        ch = {k: data[f"ch_{k}"] for k in _CH_ARRAYS}
    net = RoadNetwork(arrays, ch, ImportReport(**manifest["report"]))
    cKDTree(to_xyz(net.lat, net.lon), balanced_tree=False)
    return net


def child_serve(path: str, how: str, queries: int) -> None:
    t0 = time.perf_counter()
    net = RoadNetwork.load(path) if how == "mmap" else _copy_load(path)
    load_s = time.perf_counter() - t0
    router = Router(net)
    t0 = time.perf_counter()
    router.warm_up()  # reads every page of a mapped file first (RoadNetwork.prefault)
    warm_up_s = time.perf_counter() - t0
    table = router.prepare(facilities_for(net, SEED + 1))
    policy = Policy(top_k=10, tolerance_minutes=10, time_window_minutes=60)
    rng = np.random.default_rng(SEED + 2)
    picks = rng.integers(0, net.node_count, queries + 1)
    origins = [(float(net.lat[i]) + 3e-4, float(net.lon[i]) - 3e-4) for i in picks.tolist()]
    t1 = time.perf_counter()
    rank(origins[0], table, REQ, router=router, policy=policy)  # builds the facility buckets
    first_s = time.perf_counter() - t1

    def timed() -> tuple[float, float, float]:
        wall, cpu = [], []
        for origin in origins[1:]:
            t1 = time.perf_counter()
            c1 = time.thread_time()
            rank(origin, table, REQ, router=router, policy=policy)
            cpu.append(time.thread_time() - c1)
            wall.append(time.perf_counter() - t1)
        ms, cpu_ms = np.asarray(wall) * 1000, np.asarray(cpu) * 1000
        return (
            float(np.percentile(ms, 50)),
            float(np.percentile(ms, 99)),
            float(np.percentile(cpu_ms, 99)),
        )

    cold = timed()  # straight after the load and the warm-up
    prefault_s = net.prefault()  # again: what is left to touch (the warm-up did it)
    rng2 = np.random.default_rng(SEED + 3)
    picks = rng2.integers(0, net.node_count, queries + 1)
    origins = [(float(net.lat[i]) + 3e-4, float(net.lon[i]) - 3e-4) for i in picks.tolist()]
    warm = timed()  # new origins, every page mapped
    print(
        json.dumps(
            {
                "load_s": load_s,
                "first_ms": first_s * 1000,
                "prefault_s": prefault_s,
                "warm_up_s": warm_up_s,
                "cold_p50_ms": cold[0],
                "cold_p99_ms": cold[1],
                "cold_cpu_p99_ms": cold[2],
                "p50_ms": warm[0],
                "p99_ms": warm[1],
                "cpu_p99_ms": warm[2],
                "mapped": net.mapped,
            }
        ),
        flush=True,
    )
    sys.stdin.readline()  # the parent reads our memory from /proc, then lets us go


def _memory_kb(pid: int, path: str) -> dict[str, int]:
    """Rss/Pss of the whole process and of its maps of ``path``, from /proc/<pid>/smaps."""
    out = {"rss": 0, "pss": 0, "file_rss": 0, "file_pss": 0}
    current = False
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            first = line.split(maxsplit=1)[0]
            if "-" in first and not first.endswith(":"):
                current = line.rstrip().endswith(path)
            elif first in ("Rss:", "Pss:"):
                kb = int(line.split()[1])
                key = first[:-1].lower()
                out[key] += kb
                if current:
                    out[f"file_{key}"] += kb
    return out


def _run(args: list[str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True, check=True
    )
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _serve(path: str, how: str, queries: int, count: int) -> list[dict[str, Any]]:
    """``count`` serving processes at once; each one's figures and memory while all are up."""
    cmd = [sys.executable, __file__, "--child", "serve", "--how", how, "--path", path]
    procs = [
        subprocess.Popen(
            [*cmd, "--queries", str(queries)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    out = []
    try:
        for proc in procs:
            assert proc.stdout is not None
            out.append(dict(json.loads(proc.stdout.readline())))
        for proc, figures in zip(procs, out, strict=True):
            figures.update(_memory_kb(proc.pid, os.path.realpath(path)))
    finally:
        for proc in procs:
            proc.communicate("\n", timeout=60)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=15_000_000, help="OSM-like nodes to generate")
    parser.add_argument("--queries", type=int, default=1000, help="ranking queries per process")
    parser.add_argument("--file", help="compiled file to reuse (built there when missing)")
    parser.add_argument("--baseline-build", action="store_true", help="also build uncollapsed")
    parser.add_argument("--child", choices=["build", "serve"], help=argparse.SUPPRESS)
    parser.add_argument("--path", default="", help=argparse.SUPPRESS)
    parser.add_argument("--how", default="mmap", help=argparse.SUPPRESS)
    parser.add_argument("--no-collapse", action="store_true", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.child == "build":
        child_build(opts.nodes, opts.path, not opts.no_collapse)
        return
    if opts.child == "serve":
        child_serve(opts.path, opts.how, opts.queries)
        return

    with tempfile.TemporaryDirectory() as tmp:
        path = opts.file or os.path.join(tmp, "roads.npz")
        if opts.file and os.path.exists(opts.file):
            print(f"reusing {path} (the build figures below are those of the build it recorded)")
            b = _recorded(path)
        else:
            print(f"building a generated province of ~{opts.nodes:,} nodes (progress below)")
            b = _run(["--child", "build", "--nodes", str(opts.nodes), "--path", path])
        base_build = None
        if opts.baseline_build or opts.nodes <= 2_000_000:
            print("baseline: the same build without collapsing shape nodes")
            base_build = _run(["--child", "build", "--nodes", str(opts.nodes), "--no-collapse"])
        copies = 2 if opts.nodes <= 2_000_000 else 1  # two private copies of a province: too big
        print(f"serving: two processes map the file at once; then {copies} copy it (the old load)")
        mm = _serve(path, "mmap", opts.queries, 2)
        cp = _serve(path, "copy", opts.queries, copies)

    build_min = b["build_s"] / 60
    peak_gb = b["peak_mb"] / 1024
    print(f"\nprovince: {b['nodes']:,} nodes, {b['arcs']:,} arcs routable; ")
    print(
        f"  {b['nodes'] - b['ch_nodes']:,} shape nodes collapsed, {b['ch_nodes']:,} junctions "
        f"contracted; {b['ch_arcs']:,} hierarchy arcs"
    )
    rows = [
        (
            "build (import + hierarchy)",
            f"{build_min:.1f} min",
            f"≤ {TARGET_BUILD_MIN:.0f} min",
            f"{base_build['build_s'] / 60:.1f} min uncollapsed" if base_build else "not run",
            mark(build_min <= TARGET_BUILD_MIN),
        ),
        (
            "peak memory of the build",
            f"{peak_gb:.1f} GB",
            f"< {TARGET_PEAK_GB:.0f} GB",
            f"{base_build['peak_mb'] / 1024:.1f} GB uncollapsed" if base_build else "not run",
            mark(peak_gb < TARGET_PEAK_GB),
        ),
        ("compiled file", f"{b['size'] / 1e9:.2f} GB", "-", "-", ""),
        (
            "load (map the file)",
            f"{max(r['load_s'] for r in mm) * 1000:.1f} ms",
            f"≪ 1 s ({TARGET_LOAD_S * 1000:.0f} ms)",
            f"{max(r['load_s'] for r in cp):.2f} s copy + k-d tree",
            mark(max(r["load_s"] for r in mm) <= TARGET_LOAD_S),
        ),
        (
            "ranking p99 after the load and warm-up",
            f"{max(r['cold_p99_ms'] for r in mm):.2f} ms",
            f"≤ {TARGET_P99_MS:g} ms",
            f"{max(r['cold_p99_ms'] for r in cp):.2f} ms on the copy",
            mark(max(r["cold_p99_ms"] for r in mm) <= TARGET_P99_MS),
        ),
        (
            "  the same, CPU time of the process",
            f"{max(r['cold_cpu_p99_ms'] for r in mm):.2f} ms",
            f"≤ {TARGET_P99_MS:g} ms",
            f"{max(r['cold_cpu_p99_ms'] for r in cp):.2f} ms on the copy",
            mark(max(r["cold_cpu_p99_ms"] for r in mm) <= TARGET_P99_MS),
        ),
        (
            "warm-up; prefault again after it",
            f"{max(r['warm_up_s'] for r in mm):.1f} s, {max(r['prefault_s'] for r in mm):.2f} s",
            "-",
            f"{max(r['warm_up_s'] for r in cp):.1f} s on the copy",
            "",
        ),
        (
            "ranking query p99 (300 of 2,000)",
            f"{max(r['p99_ms'] for r in mm):.2f} ms",
            f"≤ {TARGET_P99_MS:g} ms",
            f"{max(r['p99_ms'] for r in cp):.2f} ms on the copy",
            mark(max(r["p99_ms"] for r in mm) <= TARGET_P99_MS),
        ),
        (
            "  the same, CPU time of the process",
            f"{max(r['cpu_p99_ms'] for r in mm):.2f} ms",
            f"≤ {TARGET_P99_MS:g} ms",
            f"{max(r['cpu_p99_ms'] for r in cp):.2f} ms on the copy",
            mark(max(r["cpu_p99_ms"] for r in mm) <= TARGET_P99_MS),
        ),
        (
            "ranking query p50",
            f"{max(r['p50_ms'] for r in mm):.2f} ms",
            "-",
            f"{max(r['p50_ms'] for r in cp):.2f} ms on the copy",
            "",
        ),
        (
            "memory per serving process (Pss)",
            f"{max(r['pss'] for r in mm) / 1024:.0f} MB",
            "one copy per machine",
            f"{max(r['pss'] for r in cp) / 1024:.0f} MB copying",
            "",
        ),
        (
            "  of which the mapped file (Pss/Rss)",
            f"{max(r['file_pss'] for r in mm) / 1024:.0f}/"
            f"{max(r['file_rss'] for r in mm) / 1024:.0f} MB",
            "Pss ≈ Rss / 2",
            "-",
            mark(all(r["file_pss"] < 0.6 * r["file_rss"] for r in mm)),
        ),
    ]
    print(f"\n{'what':<38} {'measured':>14}  {'target':<22} {'baseline (same run)':<30}")
    for what, got, target, base, ok in rows:
        print(f"{what:<38} {got:>14}  {target:<22} {base:<30} {ok}")
    print(
        f"\ngeneration of the input: {b['gen_s']:.0f} s, {b['gen_peak_mb'] / 1024:.1f} GB "
        f"(included in the build's peak, as a PBF reader's arrays would be); save "
        f"{b['save_s']:.1f} s; first query after load (facility buckets) "
        f"{max(r['first_ms'] for r in mm):.0f} ms; load average at the end "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (wall-clock p99 counts the time "
        "other processes held the CPU; the CPU-time p99 does not)"
    )


if __name__ == "__main__":
    main()
