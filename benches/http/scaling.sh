#!/usr/bin/env bash
# Thread-per-core scaling: the plaintext example with UNTANGLE_THREADS=1,2,4…N (each loop pinned
# to one of the server's CPUs, each with its own SO_REUSEPORT listener), loaded by wrk running
# its own threads on the other CPUs. Prints requests/s per thread count.
#
# Usage: benches/http/scaling.sh [options]
#   --server-cpus LIST   CPUs for the server (taskset list; default: the upper half of the online
#                        CPUs, or CPU 1 on a 2-CPU machine)
#   --wrk-cpus LIST      CPUs for wrk (default: the other CPUs); wrk gets one thread per CPU
#   --threads "1 2 4"    thread counts to measure (default: 1 2 4 … up to the server's CPUs)
#   --duration SECS      each measurement (default 10; a 1 s warm-up precedes it)
#   --conns N            connections (default 256; more spreads better over the listeners)
#   --depth N            requests pipelined per wrk request, with pipeline.lua (default 1)
#   --port N             (default 18080)
#   --no-build           use the existing target/release/examples/plaintext
# On a 16-CPU machine, server on 8 cores and wrk on the other 8:
#   benches/http/scaling.sh --server-cpus 0-7 --wrk-cpus 8-15 --threads "1 2 4 8"
# Needs wrk and taskset (apt-get install wrk util-linux).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

server_cpus="" wrk_cpus="" threads="" duration=10 conns=256 depth=1 port=18080 build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --server-cpus) server_cpus="$2"; shift 2 ;;
        --wrk-cpus) wrk_cpus="$2"; shift 2 ;;
        --threads) threads="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --conns) conns="$2"; shift 2 ;;
        --depth) depth="$2"; shift 2 ;;
        --port) port="$2"; shift 2 ;;
        --no-build) build=0; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

# The number of CPUs in a taskset list such as "0-3,8,10-11".
count_cpus() {
    local n=0 part
    IFS=',' read -ra parts <<< "$1"
    for part in "${parts[@]}"; do
        if [[ "$part" == *-* ]]; then
            n=$((n + ${part#*-} - ${part%-*} + 1))
        else
            n=$((n + 1))
        fi
    done
    echo "$n"
}

online=$(nproc --all)
if [ -z "$server_cpus" ]; then
    if [ "$online" -le 2 ]; then server_cpus="$((online - 1))"; else server_cpus="$((online / 2))-$((online - 1))"; fi
fi
if [ -z "$wrk_cpus" ]; then
    if [ "$online" -le 2 ]; then wrk_cpus="0"; else wrk_cpus="0-$((online / 2 - 1))"; fi
fi
server_n=$(count_cpus "$server_cpus")
wrk_n=$(count_cpus "$wrk_cpus")
if [ -z "$threads" ]; then
    t=1
    while [ "$t" -lt "$server_n" ]; do threads="$threads $t"; t=$((t * 2)); done
    threads="$threads $server_n"
fi

if [ "$build" = 1 ]; then
    (cd "$root" && cargo build --release --example plaintext)
fi
server_bin="$root/target/release/examples/plaintext"
wrk_args=(-t"$wrk_n" -c"$conns" --latency)
if [ "$depth" -gt 1 ]; then
    wrk_args+=(-s "$here/pipeline.lua")
fi

server_pid=""
cleanup() { if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi; }
trap cleanup EXIT

run_wrk() { # SECS -> requests/s
    local out
    if [ "$depth" -gt 1 ]; then
        out=$(taskset -c "$wrk_cpus" wrk "${wrk_args[@]}" -d"$1"s "http://127.0.0.1:$port/plaintext" -- "$depth")
    else
        out=$(taskset -c "$wrk_cpus" wrk "${wrk_args[@]}" -d"$1"s "http://127.0.0.1:$port/plaintext")
    fi
    if grep -q "Non-2xx\|Socket errors" <<< "$out"; then
        echo "wrk reported errors:" >&2
        grep "Non-2xx\|Socket errors" <<< "$out" >&2
    fi
    awk '/^Requests\/sec:/ { printf "%d", $2 }' <<< "$out"
}

echo "server on CPUs $server_cpus ($server_n), wrk -t$wrk_n on CPUs $wrk_cpus, $conns connections," \
     "depth $depth, ${duration}s per point"
printf '%8s %12s %14s %8s\n' threads "requests/s" "per thread" speedup
base=""
for n in $threads; do
    UNTANGLE_THREADS="$n" UNTANGLE_PIN=1 taskset -c "$server_cpus" "$server_bin" "127.0.0.1:$port" 2>/dev/null &
    server_pid=$!
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
        sleep 0.05
    done
    run_wrk 1 > /dev/null # warm-up
    rps=$(run_wrk "$duration")
    cleanup
    server_pid=""
    [ -z "$base" ] && base="$rps"
    printf '%8d %12d %14d %7.2fx\n' "$n" "$rps" "$((rps / n))" "$(awk -v a="$rps" -v b="$base" 'BEGIN { print a / b }')"
done
