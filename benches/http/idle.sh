#!/usr/bin/env bash
# Idle keep-alive connections on one server thread: opens N connections to
# examples/plaintext.rs (pinned to CPU 1), makes one request on each, holds them all idle and
# reports the server's RSS growth per connection (VmRSS minus the baseline, / N), then makes a
# second request on every connection to prove that all are still served.
#
# Usage: benches/http/idle.sh [N]   (default 100000; or IDLE_N). IDLE_NO_BUILD=1 skips builds.
# Needs one file descriptor per connection in both the server and the client: the script raises
# `ulimit -n` (within fs.nr_open; above the hard limit that takes CAP_SYS_RESOURCE) and, when
# it cannot, says why and measures the largest N the limit allows.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
n="${1:-${IDLE_N:-100000}}"
port="${IDLE_PORT:-18999}"

need=$((n + 100))
ulimit -Hn "$need" 2>/dev/null || true
ulimit -n "$need" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
limit="$(ulimit -n)"
if [ "$limit" != unlimited ] && [ "$limit" -lt "$need" ]; then
    echo "cannot raise RLIMIT_NOFILE to $need: hard limit $(ulimit -Hn) (raising it needs" \
         "CAP_SYS_RESOURCE; fs.nr_open=$(cat /proc/sys/fs/nr_open)," \
         "fs.file-max=$(cat /proc/sys/fs/file-max)); measuring N=$((limit - 100)) instead" >&2
    n=$((limit - 100))
fi

if [ "${IDLE_NO_BUILD:-0}" != 1 ]; then
    (cd "$root" && cargo build --release --example plaintext)
    (cd "$here" && cargo build --release --bin idle_client)
fi

rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

taskset -c 1 "$root/target/release/examples/plaintext" "127.0.0.1:$port" 2>/dev/null &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
done
# One request first, so that lazily created state (date cache, pools) is in the baseline.
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
cat <&3 >/dev/null
exec 3<&-
sleep 0.2
base="$(rss_kib "$server")"

coproc CLIENT { taskset -c 0 "$here/target/release/idle_client" "127.0.0.1:$port" "$n"; }
read -r _ opened <&"${CLIENT[0]}"
sleep 1
idle="$(rss_kib "$server")"
echo >&"${CLIENT[1]}"
read -r _ served <&"${CLIENT[0]}"
after="$(rss_kib "$server")"
echo >&"${CLIENT[1]}"
wait "$CLIENT_PID" || true

per_conn=$(( (idle - base) * 1024 / opened ))
echo "connections: $opened opened, $served of them served again after idling"
echo "server VmRSS: baseline $base KiB, idle with $opened connections $idle KiB, after the second round $after KiB"
echo "RSS per idle connection: $per_conn bytes"
[ "$served" = "$opened" ] && [ "$opened" = "$n" ]
