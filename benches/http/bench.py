#!/usr/bin/env python3
"""Drives the HTTP load bench; run it through run.sh, which builds the servers first.

For each round, workload and server (interleaved: A B C … A B C …) it starts a fresh server
pinned to CPU 1, warms it up with a short `wrk` run, then runs `wrk -t1` pinned to CPU 0 and
reads the server's CPU time from /proc/PID/task/*/schedstat before and after. A separate pass
under `strace -c -f` counts syscalls per request, and one under `valgrind --tool=dhat` heap
allocations per request (an exact number of requests from a small client here). Medians go to stdout and results.md as a
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
    "may_minihttp": "may_minihttp on may, one worker thread",
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
        "may_minihttp": os.path.join(rel, "may_minihttp"),
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


def start(binary, port, strace_out=None, dhat_log=None):
    """Starts a server pinned to CPU 1; returns (process handle, server pid)."""
    binary, env = split_spec(binary)
    argv = [binary, f"127.0.0.1:{port}"]
    if dhat_log:
        # valgrind runs the server in its own process (no fork), so taskset goes first and the
        # pid stays the server's; its summary goes to the log, the JSON profile is not needed.
        argv = ["valgrind", "--tool=dhat", f"--log-file={dhat_log}", f"--dhat-out-file={dhat_log}.json"] + argv
    argv = ["taskset", "-c", "1"] + argv
    if strace_out:
        argv = ["strace", "-c", "-f", "-o", strace_out] + argv
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    wait_port(port, timeout=60 if dhat_log else 10)  # valgrind takes seconds to start
    pid = proc.pid  # taskset execs the server: same pid
    if strace_out:  # the traced server is strace's child
        for _ in range(100):
            out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
            if out:
                pid = int(out[0])
                break
            time.sleep(0.01)
    return proc, pid


def stop(proc, pid, timeout=10):
    """Terminates the server itself (under strace, strace then writes its summary and exits;
    under valgrind, valgrind writes its own on the guest's fatal signal). SIGTERM, not SIGINT:
    a shell running us in the background makes its children ignore SIGINT."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout)
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


# Servers whose framework writes its own response head, so their bytes cannot match the others':
# may_minihttp sends `200 Ok`, `Server: M` and capitalised names in its own order (see
# src/bin/may_minihttp.rs). They are checked by `semantic` instead: status code, body and the
# headers other than Server and Date, names case-folded, order ignored.
RELAXED = {"may_minihttp"}


def semantic(data):
    """The responses in `data` as (status code, sorted headers without server/date, body) tuples;
    the Date header must be there."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            return out + [("truncated", data)]
        status, *lines = head.split(b"\r\n")
        headers = [tuple(x.strip().lower() for x in line.split(b":", 1)) for line in lines]
        names = [h[0] for h in headers]
        length = int(dict(headers).get(b"content-length", b"0"))
        out.append((status.split(b" ")[1], b"date" in names,
                    sorted(h for h in headers if h[0] not in (b"server", b"date")), rest[:length]))
        data = rest[length:]
    return out


def check_responses(bins, port):
    """All servers must send the same bytes apart from the Date value, also when pipelined (those
    in RELAXED: the same status, headers and body; see `semantic`)."""
    req = b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n"
    raw = {}
    for name, binary in bins.items():
        p = port.next()
        proc, pid = start(binary, p)
        try:
            raw[name] = [fetch(p, r) for r in (req, req * 3)]
        finally:
            stop(proc, pid)
    strict = [n for n in raw if n not in RELAXED] or list(raw)
    seen = {n: [re.sub(rb"(?i)(\r\ndate: )[^\r]*", rb"\1-", d) for d in raw[n]] for n in raw}
    first = strict[0]
    ok = True
    for name in raw:
        if name in RELAXED and name != first:
            same = [semantic(d) for d in raw[name]] == [semantic(d) for d in raw[first]]
            if same:
                log(f"response of {name} matches {first} header by header (not byte for byte): {seen[name][0]!r}")
        else:
            same = seen[name] == seen[first]
        if not same:
            log(f"response of {name} differs from {first}:\n  {seen[name][0]!r}\n  {seen[first][0]!r}")
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


REQUEST = b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n"
BODY = b"Hello, World!"


def drive(port, total, conns, depth, timeout=120.0):
    """Sends exactly `total` requests over `conns` connections, `depth` per write, the next batch
    on a connection once all responses to the previous one are in (wrk's pipeline.lua does the
    same, but runs for a time, not a count); fails unless every response came back."""
    import selectors

    batches = total // depth
    if batches * depth != total:
        raise ValueError(f"{total} requests do not split into batches of {depth}")
    batch = REQUEST * depth
    sel = selectors.DefaultSelector()
    left = batches
    for _ in range(min(conns, batches)):
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(batch)
        left -= 1
        sel.register(s, selectors.EVENT_READ, {"buf": b"", "got": 0})
    done = 0
    while sel.get_map():
        ready = sel.select(timeout)
        if not ready:
            raise RuntimeError(f"no response for {timeout} s ({done} of {total} in)")
        for key, _ in ready:
            s, st = key.fileobj, key.data
            data = s.recv(65536)
            if not data:
                raise RuntimeError(f"server closed a connection ({done} of {total} in)")
            # Count bodies: each response ends with one; keep the tail, which may hold a split one.
            buf = st["buf"] + data
            n = buf.count(BODY)
            if n:
                buf = buf[buf.rindex(BODY) + len(BODY):]
            st["buf"], st["got"] = buf, st["got"] + n
            done += n
            if st["got"] == depth:
                st["got"] = 0
                if left:
                    s.sendall(batch)
                    left -= 1
                else:
                    sel.unregister(s)
                    s.close()
    return done


def dhat_totals(log_path):
    """(bytes, blocks) allocated in total, from dhat's summary ("Total: X bytes in Y blocks")."""
    with open(log_path) as fh:
        m = re.search(r"Total:\s+([\d,]+) bytes in ([\d,]+) blocks", fh.read())
    if not m:
        raise RuntimeError(f"no dhat summary in {log_path}")
    return int(m.group(1).replace(",", "")), int(m.group(2).replace(",", ""))


def dhat_run(binary, port, load=None):
    """Heap totals of one server run under dhat: start, `drive(*load)` if given, SIGTERM."""
    log_path = f"/tmp/untangle-bench-dhat-{os.getpid()}-{port}.log"
    proc, pid = start(binary, port, dhat_log=log_path)
    try:
        if load:
            drive(port, *load)
    finally:
        stop(proc, pid, timeout=120)  # dhat writes its profile on the way out
    try:
        return dhat_totals(log_path)
    finally:
        for f in (log_path, log_path + ".json"):
            if os.path.exists(f):
                os.unlink(f)


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
    ap.add_argument("--allocs", action=argparse.BooleanOptionalAction,
                    default={"1": True, "0": False}.get(os.environ.get("BENCH_ALLOCS", ""), shutil.which("valgrind") is not None),
                    help="heap allocations per request under valgrind's dhat (default: on if valgrind is installed)")
    ap.add_argument("--alloc-requests", type=int, default=int(os.environ.get("BENCH_ALLOC_REQUESTS", 17_600)))
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

    # Allocations per request: a run with exactly N requests less a run with none (start-up,
    # shutdown), over N; what a connection costs is spread over its N/conns requests.
    allocs = {w[0]: {} for w in workloads}
    if args.allocs:
        n_req = args.alloc_requests
        for name in names:
            try:
                base_bytes, base_blocks = dhat_run(all_servers[name], port.next())
            except (RuntimeError, OSError) as e:
                log(f"dhat {name}: baseline failed: {e}")
                continue
            for wname, conns, depth in workloads:
                try:
                    total_bytes, total_blocks = dhat_run(all_servers[name], port.next(), (n_req, conns, depth))
                except (RuntimeError, OSError, ValueError) as e:
                    log(f"dhat {wname:20} {name:13} failed: {e}")
                    continue
                allocs[wname][name] = {
                    "allocs_per_request": (total_blocks - base_blocks) / n_req,
                    "bytes_per_request": (total_bytes - base_bytes) / n_req,
                    "requests": n_req,
                    "blocks": total_blocks,
                    "bytes": total_bytes,
                    "baseline_blocks": base_blocks,
                    "baseline_bytes": base_bytes,
                }
                a = allocs[wname][name]
                log(f"dhat {wname:20} {name:13} {a['allocs_per_request']:.2f} allocs/req "
                    f"{a['bytes_per_request']:.0f} bytes/req (baseline {base_blocks} blocks)")
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
        f"of {args.strace_duration} s"
        + (f"; heap allocations (blocks) and bytes per request from `valgrind --tool=dhat` runs of exactly "
           f"{args.alloc_requests:,} requests (same connections and depth), less a run with none" if args.allocs else "")
        + f". Command: `{command}` ({elapsed / 60:.1f} min).",
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
        if args.allocs:
            head += " allocs/req | bytes/req |"
            sep += "---:|---:|"
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
            if args.allocs:
                a = allocs[wname].get(n)
                row += f" {a['allocs_per_request']:.2f} | {a['bytes_per_request']:,.0f} |" if a else " – | – |"
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
                   "runs": results, "medians": med, "syscalls_per_request": syscalls,
                   "allocations": allocs}, fh, indent=1)

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
