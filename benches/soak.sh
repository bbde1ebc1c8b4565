#!/usr/bin/env bash
# Soak test: five minutes of wrk against examples/plaintext.rs (release build) with
# connections churning (one request in ten asks for `Connection: close`, so wrk reconnects),
# sampling the server's RSS and open fds every 10 s.
#
# Passes when: RSS after warm-up grows by less than 5%, the fd count is back to its baseline
# once the load stops, and every response was 2xx (no socket errors either).
#
# Usage: benches/soak.sh [seconds (300)] [samples file (target/soak-samples.tsv)]
# Env: SOAK_CONNECTIONS (64), SOAK_THREADS (1), SOAK_PORT (18080), SOAK_WARMUP (60 s).
# Both sides run under `nice -n 19` so a shared machine stays usable.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-300}
SAMPLES=${2:-target/soak-samples.tsv}
CONNECTIONS=${SOAK_CONNECTIONS:-64}
THREADS=${SOAK_THREADS:-1}
PORT=${SOAK_PORT:-18080}
WARMUP=${SOAK_WARMUP:-60}
INTERVAL=10

command -v wrk >/dev/null || { echo "soak: wrk not found (apt-get install wrk)"; exit 2; }

nice -n 19 cargo build --release --example plaintext --quiet
nice -n 19 target/release/examples/plaintext "127.0.0.1:$PORT" 2>/dev/null &
SERVER=$!
WRK=
cleanup() {
    [ -n "$WRK" ] && kill "$WRK" 2>/dev/null || true
    kill "$SERVER" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
done

LUA=$(mktemp --suffix=.lua)
cat >"$LUA" <<'LUA'
-- One request in ten closes its connection; paths alternate; non-2xx counted per thread.
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
    n = 0
    non2xx = 0
    keep = wrk.format("GET", "/plaintext")
    json = wrk.format("GET", "/json")
    close = wrk.format("GET", "/plaintext", { ["Connection"] = "close" })
end
function request()
    n = n + 1
    if n % 10 == 0 then return close end
    if n % 2 == 0 then return json end
    return keep
end
function response(status, headers, body)
    if status < 200 or status > 299 then non2xx = non2xx + 1 end
end
function done(summary, latency, requests)
    local bad = 0
    for _, t in ipairs(threads) do bad = bad + t:get("non2xx") end
    local e = summary.errors
    io.write(string.format("SOAK requests=%d non2xx=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d status_errors=%d\n",
        summary.requests, bad, e.connect, e.read, e.write, e.timeout, e.status))
end
LUA

sample() { # seconds rss_kib fds
    local rss fds
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$SERVER/status")
    fds=$(ls "/proc/$SERVER/fd" | wc -l)
    printf '%s\t%s\t%s\n' "$1" "$rss" "$fds" | tee -a "$SAMPLES"
}

mkdir -p "$(dirname "$SAMPLES")"
printf 'seconds\trss_kib\tfds\n' >"$SAMPLES"
BASE_FDS=$(ls "/proc/$SERVER/fd" | wc -l)
sample 0

WRK_OUT=$(mktemp)
nice -n 19 wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 5s -s "$LUA" \
    "http://127.0.0.1:$PORT/" >"$WRK_OUT" 2>&1 &
WRK=$!
elapsed=0
while kill -0 "$WRK" 2>/dev/null; do
    sleep "$INTERVAL"
    elapsed=$((elapsed + INTERVAL))
    kill -0 "$WRK" 2>/dev/null && sample "$elapsed"
done
wait "$WRK" || true
WRK=
cat "$WRK_OUT"
sleep 3
elapsed=$((elapsed + 3))
sample "$elapsed (after load)"
END_FDS=$(ls "/proc/$SERVER/fd" | wc -l)

status=0
summary=$(grep '^SOAK ' "$WRK_OUT" || true)
[ -n "$summary" ] || { echo "FAIL: no wrk summary"; exit 1; }
for key in non2xx connect_errors read_errors write_errors timeouts status_errors; do
    value=$(sed -n "s/.*$key=\([0-9]*\).*/\1/p" <<<"$summary")
    if [ "$value" != 0 ]; then
        echo "FAIL: $key=$value"
        status=1
    fi
done
# RSS: first sample at or after the warm-up against the last sample under load.
read -r warm_rss last_rss < <(awk -F'\t' -v w="$WARMUP" 'NR > 1 && $1 ~ /^[0-9]+$/ {
    if ($1 >= w && first == "") first = $2; last = $2 } END { print first, last }' "$SAMPLES")
if [ -n "$warm_rss" ] && [ -n "$last_rss" ]; then
    growth=$(awk -v a="$warm_rss" -v b="$last_rss" 'BEGIN { printf "%.2f", (b - a) * 100 / a }')
    echo "RSS after warm-up ${warm_rss} KiB, at the end ${last_rss} KiB: ${growth}% growth"
    if awk -v g="$growth" 'BEGIN { exit !(g >= 5) }'; then
        echo "FAIL: RSS grew by ${growth}% (limit 5%)"
        status=1
    fi
else
    echo "note: run shorter than the warm-up; RSS growth not checked"
fi
echo "fds: baseline $BASE_FDS, after the load $END_FDS"
if [ "$END_FDS" != "$BASE_FDS" ]; then
    echo "FAIL: fd count did not return to its baseline"
    status=1
fi
[ "$status" = 0 ] && echo "soak: PASS" || echo "soak: FAIL"
exit "$status"
