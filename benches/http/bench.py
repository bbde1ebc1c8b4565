#!/usr/bin/env python3
"""Drives the HTTP load bench; run it through run.sh, which builds the servers first.

For each round, workload and server (interleaved: A B C … A B C …) it starts a fresh server
pinned to CPU 1, warms it up with a short `wrk` run, then runs `wrk -t1` pinned to CPU 0 and
reads the server's CPU time from /proc/PID/task/*/schedstat before and after. A separate pass
under `strace -c -f` counts syscalls per request. Medians go to stdout and results.md as a
Markdown table (with ratios against the floor and hyper), the raw numbers to results.json, and a
chart to chart.svg (gnuplot), all next to this file.
"""
import argparse
import glob
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# name, connections, pipeline depth
WORKLOADS = [
    ("keep-alive c=64", 64, 1),
    ("pipelined x16 c=64", 64, 16),
    ("keep-alive c=1", 1, 1),
]
FLOOR = "floor"
HYPER = "hyper"
DESCRIPTIONS = {
    "plaintext": "untangle HTTP server (`examples/plaintext.rs`)",
    "untangle_min": "hand-written HTTP loop on untangle",
    "tokio_min": "hand-written HTTP loop on tokio current_thread",
    "smol_min": "hand-written HTTP loop on smol (`async_io::block_on`)",
    "hyper": "hyper 1.x on tokio current_thread",
    "floor": "raw edge-triggered epoll, no executor (the floor)",
    "plaintext_polling": "untangle HTTP server, portable reactor backend (`UNTANGLE_REACTOR=polling`)",
    "untangle_min_polling": "hand-written HTTP loop on untangle, portable reactor backend",
}


def servers(root):
    rel = os.path.join(HERE, "target", "release")
    return {
        "plaintext": os.path.join(root, "target", "release", "examples", "plaintext"),
        "untangle_min": os.path.join(rel, "untangle_min"),
        "tokio_min": os.path.join(rel, "tokio_min"),
        "smol_min": os.path.join(rel, "smol_min"),
        "hyper": os.path.join(rel, "hyper_server"),
        "floor": os.path.join(rel, "floor"),
        # The same binaries on the reactor's portable backend (polling's own API): "path|VAR=value".
        "plaintext_polling": os.path.join(root, "target", "release", "examples", "plaintext")
        + "|UNTANGLE_REACTOR=polling",
        "untangle_min_polling": os.path.join(rel, "untangle_min") + "|UNTANGLE_REACTOR=polling",
        # Extra servers to compare, e.g. an older build: BENCH_EXTRA=before=/path/to/plaintext
        **dict(e.split("=", 1) for e in os.environ.get("BENCH_EXTRA", "").split(",") if "=" in e),
    }


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def cpu_ns(pid):
    """CPU time of all the process's threads, in ns (first field of schedstat)."""
    total = 0
    for f in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(f) as fh:
                total += int(fh.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def wait_port(port, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"server did not listen on {port}")


class Port:
    """A fresh port per server start, so no TIME_WAIT socket of a previous run interferes."""

    def __init__(self):
        self.port = 18000 + (os.getpid() % 1000) * 10

    def next(self):
        self.port += 1
        if self.port > 60000:
            self.port = 18000
        return self.port


def split_spec(spec):
    """A server spec is a binary path, optionally followed by "|VAR=value|..." for its environment."""
    path, *assignments = spec.split("|")
    env = dict(os.environ)
    env.update(a.split("=", 1) for a in assignments)
    return path, env


def start(binary, port, strace_out=None):
    """Starts a server pinned to CPU 1; returns (process handle, server pid)."""
    binary, env = split_spec(binary)
    argv = ["taskset", "-c", "1", binary, f"127.0.0.1:{port}"]
    if strace_out:
        argv = ["strace", "-c", "-f", "-o", strace_out] + argv
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    wait_port(port)
    pid = proc.pid  # taskset execs the server: same pid
    if strace_out:  # the traced server is strace's child
        for _ in range(100):
            out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
            if out:
                pid = int(out[0])
                break
            time.sleep(0.01)
    return proc, pid


def stop(proc, pid):
    """Terminates the server itself (under strace, strace then writes its summary and exits).
    SIGTERM, not SIGINT: a shell running us in the background makes its children ignore SIGINT."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wrk(port, conns, depth, duration):
    """Runs wrk pinned to CPU 0; returns (requests, requests/s). Fails on any wrk error."""
    argv = ["taskset", "-c", "0", "wrk", "-t1", f"-c{conns}", f"-d{duration}s"]
    if depth > 1:
        argv += ["-s", os.path.join(HERE, "pipeline.lua")]
    argv += [f"http://127.0.0.1:{port}/plaintext"]
    if depth > 1:
        argv += ["--", str(depth)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    if bad:
        log(f"  wrk reported: {bad.group(0)}")
    return reqs, rps


def fetch(port, raw):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(raw)
        data = b""
        while b"Hello, World!" not in data or data.count(b"Hello, World!") < raw.count(b"GET "):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def check_responses(bins, port):
    """All servers must send the same bytes apart from the Date value, also when pipelined."""
    req = b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n"
    seen = {}
    for name, binary in bins.items():
        p = port.next()
        proc, pid = start(binary, p)
        try:
            seen[name] = [re.sub(rb"(?i)(\r\ndate: )[^\r]*", rb"\1-", fetch(p, r)) for r in (req, req * 3)]
        finally:
            stop(proc, pid)
    first = next(iter(seen))
    ok = True
    for name, got in seen.items():
        if got != seen[first]:
            log(f"response of {name} differs from {first}:\n  {got[0]!r}\n  {seen[first][0]!r}")
            ok = False
    if not ok:
        sys.exit("servers do not send identical responses; fix them before measuring")
    log(f"responses identical (Date aside): {seen[first][0]!r}")


def strace_counts(out):
    """Total syscall count from an `strace -c` summary."""
    total = 0
    with open(out) as fh:
        for line in fh:
            m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$", line)
            if m and m.group(2) != "total":
                total += int(m.group(1))
    return total


def fmt_ratio(x):
    return f"{x:.2f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", 3)))
    ap.add_argument("--duration", type=int, default=int(os.environ.get("BENCH_DURATION", 5)))
    ap.add_argument("--warmup", type=int, default=int(os.environ.get("BENCH_WARMUP", 1)))
    ap.add_argument("--servers", default=os.environ.get("BENCH_SERVERS", ""))
    ap.add_argument("--workloads", default=os.environ.get("BENCH_WORKLOADS", ""),
                    help="comma-separated substrings of workload names, e.g. c=64,x16")
    ap.add_argument("--strace-duration", type=int, default=int(os.environ.get("BENCH_STRACE_DURATION", 3)))
    ap.add_argument("--no-strace", action="store_true", default=os.environ.get("BENCH_STRACE") == "0")
    ap.add_argument("--no-chart", action="store_true", default=os.environ.get("BENCH_CHART") == "0")
    ap.add_argument("--out", default=os.environ.get("BENCH_OUT", HERE), help="directory for results.*, chart.svg")
    args = ap.parse_args()

    all_servers = servers(args.root)
    names = [n for n in all_servers if not args.servers or n in args.servers.split(",")]
    workloads = [w for w in WORKLOADS if not args.workloads or any(s in w[0] for s in args.workloads.split(","))]
    for n in names:
        if not os.access(split_spec(all_servers[n])[0], os.X_OK):
            sys.exit(f"{all_servers[n]} is missing: run benches/http/run.sh (it builds first)")
    port = Port()
    check_responses({n: all_servers[n] for n in names}, port)

    started = time.time()
    results = {w[0]: {n: [] for n in names} for w in workloads}
    for rnd in range(args.rounds):
        for wname, conns, depth in workloads:
            for name in names:  # interleaved: A B C … A B C …
                p = port.next()
                proc, pid = start(all_servers[name], p)
                try:
                    if args.warmup:
                        wrk(p, conns, depth, args.warmup)
                    before = cpu_ns(pid)
                    reqs, rps = wrk(p, conns, depth, args.duration)
                    after = cpu_ns(pid)
                finally:
                    stop(proc, pid)
                ns = (after - before) / max(reqs, 1)
                results[wname][name].append({"rps": rps, "ns_per_req": ns, "requests": reqs})
                log(f"round {rnd + 1}/{args.rounds} {wname:20} {name:13} {rps:10.0f} req/s {ns:9.0f} CPU ns/req")

    syscalls = {w[0]: {} for w in workloads}
    if not args.no_strace and shutil.which("strace"):
        for wname, conns, depth in workloads:
            for name in names:
                p = port.next()
                out = f"/tmp/untangle-bench-strace-{os.getpid()}-{p}.txt"
                proc, pid = start(all_servers[name], p, strace_out=out)
                try:
                    reqs, _ = wrk(p, conns, depth, args.strace_duration)
                finally:
                    stop(proc, pid)
                syscalls[wname][name] = strace_counts(out) / max(reqs, 1)
                os.unlink(out)
                log(f"strace {wname:20} {name:13} {syscalls[wname][name]:.2f} syscalls/req")
    elapsed = time.time() - started

    med = {
        w: {
            n: {
                "rps": statistics.median(r["rps"] for r in results[w][n]),
                "ns_per_req": statistics.median(r["ns_per_req"] for r in results[w][n]),
            }
            for n in names
        }
        for w in results
    }
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    command = f"BENCH_ROUNDS={args.rounds} BENCH_DURATION={args.duration} benches/http/run.sh"
    if os.environ.get("BENCH_EXTRA"):
        command = f"BENCH_EXTRA={os.environ['BENCH_EXTRA']} " + command
    lines = [
        f"Measured {when} on {os.cpu_count()} × {cpu} (Linux {platform.release()}): server pinned to CPU 1, "
        f"`wrk -t1` to CPU 0; medians of {args.rounds} interleaved rounds of {args.duration} s "
        f"({args.warmup} s warm-up, a fresh server each run); syscalls from one `strace -c -f` run "
        f"of {args.strace_duration} s. Command: `{command}` ({elapsed / 60:.1f} min).",
        "",
    ]
    for wname, _, _ in workloads:
        has_floor, has_hyper = FLOOR in names, HYPER in names
        head = "| server | req/s | CPU ns/req |"
        sep = "|---|---:|---:|"
        if has_floor:
            head += " vs floor |"
            sep += "---:|"
        if has_hyper:
            head += " vs hyper |"
            sep += "---:|"
        head += " syscalls/req |"
        sep += "---:|"
        lines += [f"**{wname}**", "", head, sep]
        for n in names:
            m = med[wname][n]
            row = f"| {DESCRIPTIONS.get(n, n)} | {m['rps']:,.0f} | {m['ns_per_req']:,.0f} |"
            if has_floor:
                row += f" {fmt_ratio(m['ns_per_req'] / med[wname][FLOOR]['ns_per_req'])} |"
            if has_hyper:
                row += f" {fmt_ratio(m['ns_per_req'] / med[wname][HYPER]['ns_per_req'])} |"
            sc = syscalls[wname].get(n)
            row += f" {sc:.2f} |" if sc is not None else " – |"
            lines.append(row)
        lines.append("")
    lines.append("Ratios are of CPU ns per request (lower is better); req/s is bounded by `wrk` sharing the 2 cores.")
    table = "\n".join(lines)
    print(table)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.md"), "w") as fh:
        fh.write(table + "\n")
    with open(os.path.join(args.out, "results.json"), "w") as fh:
        json.dump({"date": when, "command": command, "rounds": args.rounds, "duration_s": args.duration,
                   "runs": results, "medians": med, "syscalls_per_request": syscalls}, fh, indent=1)

    if not args.no_chart and shutil.which("gnuplot") and FLOOR in names:
        chart(args.out, names, workloads, med, when)


def chart(out, names, workloads, med, when):
    """A clustered bar chart of CPU ns/request relative to the floor, per workload."""
    data = os.path.join(out, "chart.dat")
    with open(data, "w") as f:
        f.write("server " + " ".join(f'"{w[0]} (floor {med[w[0]][FLOOR]["ns_per_req"]:,.0f} ns)"' for w in workloads) + "\n")
        for n in names:
            f.write(f'"{n}" ' + " ".join(f"{med[w[0]][n]['ns_per_req'] / med[w[0]][FLOOR]['ns_per_req']:.3f}" for w in workloads) + "\n")
    script = f"""
set terminal svg size 900,440 dynamic noenhanced font 'sans,12' background '#ffffff'
set output '{os.path.join(out, "chart.svg")}'
set title "Server CPU time per request relative to the raw-epoll floor (lower is better)\\n{when}, medians"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set yrange [0:*]
set ylabel 'CPU ns/request ÷ floor'
set grid ytics
set key outside below horizontal
set arrow from graph 0, first 1 to graph 1, first 1 nohead dashtype 2 lc rgb '#555555'
plot for [i=2:{len(workloads) + 1}] '{data}' using i:xtic(1) title columnheader(i)
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    os.unlink(data)
    log(f"chart: {os.path.join(out, 'chart.svg')}")


if __name__ == "__main__":
    main()
