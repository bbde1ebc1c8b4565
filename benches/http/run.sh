#!/usr/bin/env bash
# HTTP load bench: untangle's plaintext server and its peers, one at a time, the server pinned to
# CPU 1 and `wrk -t1` to CPU 0, in interleaved rounds; prints medians and writes results.md,
# results.json and chart.svg next to this script.
#
# Usage: benches/http/run.sh [--rounds N] [--duration SECS] [--servers a,b] [--workloads x16,c=1]
#                            [--no-strace] [--[no-]allocs] [--no-chart] [--out DIR]
# or the same knobs as environment variables: BENCH_ROUNDS (3), BENCH_DURATION (5 s per run),
# BENCH_WARMUP (1 s), BENCH_SERVERS (plaintext,untangle_min,tokio_min,smol_min,hyper,
# may_minihttp,floor,plaintext_polling,untangle_min_polling: the last two on the portable reactor
# backend),
# BENCH_WORKLOADS, BENCH_STRACE=0, BENCH_STRACE_DURATION (3 s), BENCH_CHART=0, BENCH_OUT,
# BENCH_NO_BUILD=1 (skip the two release builds), BENCH_ALLOCS=1/0 (heap allocations per request
# under valgrind's dhat; on by default when valgrind is installed), BENCH_ALLOC_REQUESTS (17600:
# the exact request count of each dhat run; a multiple of every pipeline depth).
# The defaults take about 8 minutes, plus about a minute for the dhat pass. Needs wrk, strace
# (syscall counts), valgrind (allocations) and gnuplot (the chart):
#   apt-get install wrk strace valgrind gnuplot-nox
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
for tool in wrk taskset python3; do
    command -v "$tool" >/dev/null || { echo "$tool is missing (apt-get install wrk strace valgrind gnuplot-nox)" >&2; exit 1; }
done
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
    (cd "$root" && cargo build --release --example plaintext)
    (cd "$here" && cargo build --release --bins)
fi
exec python3 "$here/bench.py" --root "$root" "$@"
