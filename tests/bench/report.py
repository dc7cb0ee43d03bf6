#!/usr/bin/env python3
"""Turns the JSON lines of one side-by-side run (baton-bench --json) into docs/BENCHMARKS.md
(the issue's targets as ratios measured in that run, with pass/fail, and every figure side by
side) and a PNG chart. Called by tests/bench/side-by-side.sh; standard library + matplotlib."""

import argparse
import datetime
import json
import os
import platform
import statistics

SESSION_MS = 2000
# This section and everything after it in an existing BENCHMARKS.md are kept as written.
KEPT_HEADING = "## Where the time goes"


def figures(path):
    """The figures (JSON lines) in `path`, each with its (target, workload, metric) key."""
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if line.startswith("{"):
            f = json.loads(line)
            yield (f["target"], f["workload"], f["metric"]), f


def load(path):
    return dict(figures(path))


def val(figs, target, workload, metric):
    f = figs.get((target, workload, metric))
    return None if f is None else f["value"]


def fmt(x, unit=""):
    if x is None:
        return "n/a"
    if abs(x) >= 100:
        s = f"{x:,.0f}"
    elif abs(x) >= 10:
        s = f"{x:.1f}"
    else:
        s = f"{x:.2f}"
    return f"{s} {unit}".strip()


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def targets(figs):
    """Rows: (target text, measured text, ratio or value, goal text, passed or None)."""
    v = lambda t, w, m: val(figs, t, w, m)  # noqa: E731
    fsync = v("host", "limits", "fdatasync.p50")
    rows = []

    def row(what, measured, r, goal, ok):
        rows.append((what, measured, r, goal, None if r is None else ok(r)))

    w = v("baton", "latency", "set.p50")
    r = ratio(w, fsync)
    row("1-client durable write (set) p50 vs fdatasync p50",
        f"{fmt(w, 'µs')} vs {fmt(fsync, 'µs')}", r, "≤ 1.5×", lambda x: x <= 1.5)
    b, z = v("baton", "write", "c64"), v("zk", "write", "c64")
    row("write throughput, 64 clients, vs ZooKeeper", f"{fmt(b, '/s')} vs {fmt(z, '/s')}",
        ratio(b, z), "≥ 4×", lambda x: x >= 4)
    # The echo server in a process of its own, as batond is to its clients (see the note below
    # the table for the in-process echo).
    b, e = v("baton", "read", "c64"), v("host", "limits", "echo.unix_process.c64")
    row("read throughput, 64 clients, vs Unix-socket echo to another process (64 clients)",
        f"{fmt(b, '/s')} vs {fmt(e, '/s')}", ratio(b, e), "≥ 0.5×", lambda x: x >= 0.5)
    b, e = v("baton", "read", "c1.p50"), v("host", "limits", "echo.unix_process.c1.p50")
    row("1-client read (get) p50 vs Unix-socket echo p50 to another process, both back to back",
        f"{fmt(b, 'µs')} vs {fmt(e, 'µs')}", ratio(b, e), "≤ 3×", lambda x: x <= 3)
    b = v("baton", "watch", "set_to_event.p50")
    limit = None if fsync is None else fsync + 150
    row("watch set→event p50 vs fdatasync p50 + 150 µs", f"{fmt(b, 'µs')} vs {fmt(limit, 'µs')}",
        ratio(b, limit), "≤ 1×", lambda x: x <= 1)
    b, z = v("baton", "lock", "handoffs"), v("zk", "lock", "handoffs")
    row("lock handoffs/s, 8 contenders, vs ZooKeeper", f"{fmt(b, '/s')} vs {fmt(z, '/s')}",
        ratio(b, z), "≥ 4×", lambda x: x >= 4)
    b = v("baton", "expiry", "kill_to_gone")
    row("expiry: kill → gone vs session timeout (2 s) + 150 ms", f"{fmt(b, 'ms')} vs 2,150 ms",
        ratio(b, SESSION_MS + 150), "≤ 1×", lambda x: x <= 1)
    b = v("baton", "footprint", "rss.idle")
    row("RSS idle", fmt(b, "MiB"), b, "≤ 5 MiB", lambda x: x <= 5)
    b, e = v("baton", "footprint", "rss.loaded"), v("etcd", "footprint", "rss.loaded")
    row("RSS with 100k nodes vs etcd's", f"{fmt(b, 'MiB')} vs {fmt(e, 'MiB')}", ratio(b, e),
        "≤ 0.25×", lambda x: x <= 0.25)
    b = v("baton", "startup", "startup.empty")
    row("start → first answered request, empty", fmt(b, "ms"), b, "≤ 20 ms", lambda x: x <= 20)
    b = v("baton", "startup", "startup.loaded")
    row("start → first answered request, 100k nodes", fmt(b, "ms"), b, "≤ 1,000 ms",
        lambda x: x <= 1000)
    return rows


def side_by_side(figs):
    keys = []
    for (t, w, m) in figs:
        if t in ("baton", "zk", "etcd") and (w, m) not in keys:
            keys.append((w, m))
    lines = ["| workload | figure | Baton | ZooKeeper | etcd | Baton / ZooKeeper | Baton / etcd |",
             "|---|---|---|---|---|---|---|"]
    for (w, m) in keys:
        unit = next(f["unit"] for (t, ww, mm), f in figs.items() if (ww, mm) == (w, m))
        cells = []
        for t in ("baton", "zk", "etcd"):
            f = figs.get((t, w, m))
            if f is None:
                cells.append("—")
            elif f["reps"] > 1:
                cells.append(f"{fmt(f['value'])} ({fmt(f['min'])}–{fmt(f['max'])})")
            else:
                cells.append(fmt(f["value"]))
        b, z, e = (val(figs, t, w, m) for t in ("baton", "zk", "etcd"))
        rz, re_ = ratio(b, z), ratio(b, e)
        lines.append(f"| {w} | {m} ({unit}) | {cells[0]} | {cells[1]} | {cells[2]} | "
                     f"{fmt(rz) + '×' if rz is not None else '—'} | {fmt(re_) + '×' if re_ is not None else '—'} |")
    return "\n".join(lines)


PAIRED_FIGURES = (("write", "c64", "64-client writes/s"), ("lock", "handoffs", "lock hand-offs/s"))


def paired_rounds(steal_path, warmup_path, counted_path):
    """The paired phase round by round: each repetition's figure and the host's steal time
    during it (`steal.txt` lines: round server workload percent; rounds up to 0 warm up)."""
    steal = {}
    for line in open(steal_path, encoding="utf-8"):
        rnd, server, workload, pct = line.split()
        steal[(int(rnd), server, workload)] = float(pct)
    rounds = sorted({r for (r, _, _) in steal})
    warmups = sum(1 for r in rounds if r <= 0)
    wanted = {(w, m) for w, m, _ in PAIRED_FIGURES}
    values = {}
    for path, first in ((warmup_path, 1 - warmups), (counted_path, 1)):
        seen = {}
        for (target, workload, metric), f in figures(path):
            if (workload, metric) in wanted:
                k = seen.get((target, workload), 0)
                seen[(target, workload)] = k + 1
                values[(first + k, target, workload)] = f["value"]
    head = "| round |" + "".join(f" {label}, Baton | {label}, ZooKeeper |" for _, _, label in PAIRED_FIGURES)
    lines = [head, "|---|" + "---|---|" * len(PAIRED_FIGURES)]
    for r in rounds:
        cells = []
        for workload, _, _ in PAIRED_FIGURES:
            for target in ("baton", "zk"):
                v, pct = values.get((r, target, workload)), steal.get((r, target, workload))
                cells.append(f"{fmt(v)} ({pct:.1f} %)" if pct is not None else fmt(v))
        label = f"warm-up {r + warmups}" if r <= 0 else str(r)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    counted = [pct for (r, _, _), pct in steal.items() if r > 0]
    return "\n".join(lines), max(counted, default=0.0)


def limits_table(figs):
    lines = ["| figure | median (min–max) |", "|---|---|"]
    for (t, w, m), f in figs.items():
        if t == "host":
            lines.append(f"| {m} ({f['unit']}) | {fmt(f['value'])} ({fmt(f['min'])}–{fmt(f['max'])}) |")
    return "\n".join(lines)


def markdown(figs, args):
    rows = targets(figs)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    passed = sum(1 for r in rows if r[4])
    out = [
        "# Benchmarks: Baton side by side with ZooKeeper and etcd",
        "",
        f"Measured {now} on {os.cpu_count()} cores, Linux {platform.release()}; {args.versions}. "
        f"One run of `tests/bench/side-by-side.sh`: each figure is the median of {args.reps} "
        "repetitions (min–max in brackets), and every ratio compares figures of that same run. "
        "Baton is driven over its Unix socket, ZooKeeper and etcd over loopback TCP, all three "
        "from the same Rust load generator (`baton-bench`), all with their default durability "
        "(Baton: its journal record on stable storage before the reply, written `O_DIRECT | O_DSYNC`; ZooKeeper "
        "`forceSync=yes`; etcd fsyncs its WAL). The machine is small and shared, so absolute "
        "numbers vary from run to run; the ratios are what to compare."
        + (
            f" The two targets against ZooKeeper's throughput (64-client writes, lock hand-offs) "
            f"are the median of {args.paired.split(',')[0]} repetitions measured after the rest "
            "with Baton and ZooKeeper both up, their repetitions alternated (each server first in "
            f"every other round), after uncounted rounds that warm both up (ZooKeeper's JIT: "
            f"{args.paired.split(',')[1]}), so that the machine's drift over the run falls on "
            "both alike."
            if args.paired
            else ""
        )
        + (
            f" Other servers were running beside this run and shared its CPU: {args.others}."
            if args.others
            else ""
        ),
        "",
        "## The issue's targets",
        "",
        f"{passed} of {len(rows)} met in this run.",
        "",
        "| target | measured | ratio / value | goal | result |",
        "|---|---|---|---|---|",
    ]
    for what, measured, r, goal, ok in rows:
        res = "n/a" if ok is None else ("**pass**" if ok else "**miss**")
        out.append(f"| {what} | {measured} | {fmt(r)} | {goal} | {res} |")
    mixed = val(figs, "baton", "latency", "get.p50")
    get, echo_in = val(figs, "baton", "read", "c1.p50"), val(figs, "host", "limits", "echo.unix.c1.p50")
    reads, echo_in64 = val(figs, "baton", "read", "c64"), val(figs, "host", "limits", "echo.unix.c64")
    out += [
        "",
        "The read targets compare with an echo server in a process of its own, as batond is to "
        "its clients: a round trip between two processes pays a wake-up on each side, which the "
        "in-process echo (client and server tasks on one tokio runtime) can skip. Against the "
        f"in-process echo the 1-client read p50 is {fmt(ratio(get, echo_in))}× "
        f"({fmt(get, 'µs')} vs {fmt(echo_in, 'µs')}) and 64-client reads are "
        f"{fmt(ratio(reads, echo_in64))}× ({fmt(reads, '/s')} vs {fmt(echo_in64, '/s')}). "
        "The 1-client read p50 is that of back-to-back gets (`read c1.p50`), as the echo's is "
        "of back-to-back round trips. The `get` of the `latency` mix follows a durable `set`, "
        f"during whose fsync both processes went idle; its p50 ({fmt(mixed, 'µs')}) is in the "
        "table below.",
        "",
    ]
    if args.steal:
        table, most = paired_rounds(args.steal, args.paired_warmup_figures, args.paired_figures)
        out += [
            "## The paired rounds",
            "",
            "Each repetition of the paired phase, in the order run (each server first in every "
            "other round), with the host's steal time during it in brackets: the share of the "
            "vCPUs' time the host ran something else instead (`/proc/stat`). A serial chain "
            "such as the lock's hand-offs stalls whenever the host holds a vCPU its next step "
            "needs, so a few percent of steal can cost it far more than that: a repetition with "
            f"steal is an outlier of the machine, not of the server. At "
            f"most {most:.1f} % in a counted repetition of this run; nothing is corrected for it.",
            "",
            table,
            "",
        ]
    out += [
        "## Every figure",
        "",
        "Latencies in µs (p50/p99/p999 per operation, one client); throughput in operations "
        "per second with N clients (`cN`), each on its own session and node; `watch` is the "
        "time from sending a set to the event arriving on another connection; `lock` is 8 "
        "contenders looping acquire → release (Baton's `Lock` recipe, ZooKeeper's standard "
        "recipe, etcd's lock API with a lease); `expiry` is a SIGKILLed holder of an ephemeral "
        "node with a 2 s session (etcd: a 2 s lease) until another client sees the node gone "
        "(`connection_bound`: Baton's session that ends with its connection); `footprint` is "
        f"VmRSS and the data directory's allocated size, idle and after {args.fill:,} "
        "nodes of 100 bytes (`fill_rate`: creates/s with 64 clients); `startup` runs from the "
        "process launch to the first answered request, empty and with those nodes (each a "
        "launch of its own; Baton's empty ones each on a fresh data directory).",
        "",
        side_by_side(figs),
        "",
        "The machine's limits, measured in the same run (fdatasync: 4 KiB appends + "
        "`fdatasync` on the filesystem holding the data dirs; echo: a tokio echo server in the "
        "benchmark's own process (`unix`, `tcp`) or in a process of its own (`unix_process`), "
        "16-byte messages, N clients):",
        "",
        limits_table(figs),
        "",
        "![Baton, ZooKeeper and etcd side by side](bench.png)",
        "",
        "## How to reproduce",
        "",
        "```sh",
        "sudo tests/bench/side-by-side.sh         # as root: installs zookeeper, etcd-server,",
        "                                         # protobuf-compiler, matplotlib if missing",
        "REPS=5 FILL=100000 sudo -E tests/bench/side-by-side.sh",
        "```",
        "",
        "It expects the peer scripts in `../shared/peers` beside the repository (or `PEERS_DIR`). "
        "One workload against one server: "
        "`cargo run --release -p baton-bench -- --target baton --addr /path/baton.sock latency` "
        "(`--target zk --addr 127.0.0.1:PORT`, `--target etcd --addr http://127.0.0.1:PORT`; "
        "`--json` for JSON lines; `baton-bench --help` lists the workloads).",
        "",
    ]
    return "\n".join(out)


def chart(figs, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {"baton": "Baton", "zk": "ZooKeeper", "etcd": "etcd"}
    colors = {"baton": "#2a7ab9", "zk": "#d9822b", "etcd": "#5a9e4b"}
    panels = [
        ("Write throughput (ops/s)", [("write", "c1"), ("write", "c16"), ("write", "c64")], True),
        ("Read throughput (ops/s)", [("read", "c1"), ("read", "c16"), ("read", "c64")], True),
        ("1-client latency p50 (µs)", [("latency", "create.p50"), ("latency", "set.p50"),
                                       ("latency", "get.p50"), ("watch", "set_to_event.p50")], True),
        ("Lock handoffs/s (8 contenders)", [("lock", "handoffs")], False),
        ("Kill → ephemeral gone (ms)", [("expiry", "kill_to_gone")], False),
        ("RSS (MiB)", [("footprint", "rss.idle"), ("footprint", "rss.loaded")], True),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    for ax, (title, metrics, log) in zip(axes.flat, panels):
        width = 0.8 / 3
        for i, t in enumerate(("baton", "zk", "etcd")):
            ys = [val(figs, t, w, m) or 0 for (w, m) in metrics]
            xs = [j + (i - 1) * width for j in range(len(metrics))]
            ax.bar(xs, ys, width, label=names[t], color=colors[t])
        ax.set_xticks(range(len(metrics)))
        ax.set_xticklabels([m for (_, m) in metrics], fontsize=8)
        ax.set_title(title, fontsize=10)
        if log:
            ax.set_yscale("log")
        refs = {"Write throughput (ops/s)": ("host", "limits", "fdatasync.rate", "fdatasync/s"),
                "Read throughput (ops/s)": ("host", "limits", "echo.unix.c64", "Unix echo, 64 clients"),
                "1-client latency p50 (µs)": ("host", "limits", "fdatasync.p50", "fdatasync p50")}
        if title in refs:
            t, w, m, label = refs[title]
            y = val(figs, t, w, m)
            if y:
                ax.axhline(y, color="grey", linestyle="--", linewidth=1, label=label)
        ax.legend(fontsize=7)
    fig.suptitle("Baton, ZooKeeper and etcd on one machine, one run (higher is better for "
                 "throughput, lower for latency, time and memory)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def fold(path):
    """One figure per (target, workload, metric) of single repetitions: their median, min and max."""
    runs = {}
    for key, f in figures(path):
        runs.setdefault(key, []).append(f)
    for (target, workload, metric), fs in runs.items():
        values = [f["value"] for f in fs]
        print(json.dumps({"target": target, "workload": workload, "metric": metric,
                          "value": statistics.median(values), "unit": fs[0]["unit"],
                          "min": min(values), "max": max(values), "reps": len(values),
                          "paired": True}))


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--fold", help="print the median of each figure's single repetitions in this "
                   "file, as one figure, and exit")
    p.add_argument("--figures")
    p.add_argument("--markdown")
    p.add_argument("--chart")
    p.add_argument("--versions", default="")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--paired", default="", help="REPS,WARMUP of the paired phase, if there was one")
    p.add_argument("--fill", type=int, default=100000)
    p.add_argument("--others", default="", help="servers found running before the run started")
    p.add_argument("--steal", help="the paired phase's host steal per repetition (steal.txt)")
    p.add_argument("--paired-warmup-figures", help="the paired phase's uncounted figures (JSON lines)")
    p.add_argument("--paired-figures", help="the paired phase's counted figures (JSON lines)")
    args = p.parse_args()
    if args.fold:
        return fold(args.fold)
    if not (args.figures and args.markdown and args.chart):
        p.error("--figures, --markdown and --chart are needed to write the report")
    figs = load(args.figures)
    text = markdown(figs, args)
    # Hand-written analysis below the generated part survives a new run.
    if os.path.exists(args.markdown):
        old = open(args.markdown, encoding="utf-8").read()
        at = old.find(KEPT_HEADING)
        if at >= 0:
            text += "\n" + old[at:]
    with open(args.markdown, "w", encoding="utf-8") as f:
        f.write(text)
    chart(figs, args.chart)


if __name__ == "__main__":
    main()
