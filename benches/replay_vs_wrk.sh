#!/usr/bin/env bash
# Replay throughput side by side with wrk, against the same local testbed, at the same
# concurrency, in one run:
#   bash benches/replay_vs_wrk.sh [EXCHANGES] [CONCURRENCY]
# NPRT=path/to/nprt benchmarks that binary instead of building target/release/nprt.
# Needs wrk (Debian: apt-get install wrk) and GNU time (/usr/bin/time) for nprt's peak RSS.
# Loopback only; every load loop is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
c=${2:-64}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

if [ -z "${NPRT:-}" ]; then
  cargo build --release -q
fi
nprt=${NPRT:-target/release/nprt}

# A recording of n GETs over 50 paths, made without any server (the bench measures sending).
python3 - "$work/bench.gor" "$n" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
sep = b"\n\xf0\x9f\x90\xb5\xf0\x9f\x99\x88\xf0\x9f\x99\x89\n"
t0 = 1_700_000_000_000_000_000
with open(path, "wb") as f:
    for i in range(n):
        req = f"GET /bench/{i % 50}?q={i} HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\n\r\n".encode()
        f.write(f"1 {i:024x} {t0 + i * 1000} 0\n".encode() + req + sep)
PY

"$nprt" testbed --listen 127.0.0.1:0 > "$work/testbed.out" &
for _ in $(seq 50); do grep -q listening "$work/testbed.out" && break; sleep 0.1; done
url=$(awk '{print $NF}' "$work/testbed.out")
load=$(cut -d" " -f1-3 /proc/loadavg)
echo "testbed at $url; $n exchanges; concurrency $c; $(nproc) cores; load average $load"

echo "== wrk: 10 s, $c connections, 2 threads"
/usr/bin/time -f "%U %S" -o "$work/wrk.cpu" timeout 60 wrk -t2 -c"$c" -d10s "$url/bench/1?q=1" \
  | tee "$work/wrk.out"
wrk_rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")
wrk_n=$(awk '/requests in/ {print $1}' "$work/wrk.out")

echo "== nprt replay --max --concurrency $c"
/usr/bin/time -f "%M %U %S" -o "$work/nprt.time" timeout 300 "$nprt" replay "$work/bench.gor" \
  --target "bench=$url" --max --concurrency "$c" 2> "$work/nprt.err"
cat "$work/nprt.err"
nprt_rps=$(sed -n 's/.*(\([0-9.]*\) exchanges\/s).*/\1/p' "$work/nprt.err")
read -r rss_kb nprt_user nprt_sys < "$work/nprt.time"
read -r wrk_user wrk_sys < "$work/wrk.cpu"
echo
# Throughput depends on what else the machine runs; the CPU time each client spends per
# request (user + system) depends much less on it.
python3 - <<PY
wrk_rps, nprt_rps = float("$wrk_rps"), float("$nprt_rps")
wrk_us = ($wrk_user + $wrk_sys) / $wrk_n * 1e6
nprt_us = ($nprt_user + $nprt_sys) / $n * 1e6
print(f"wrk:  {wrk_rps:9.0f} requests/s, {wrk_us:5.1f} us CPU per request")
print(f"nprt: {nprt_rps:9.0f} requests/s, {nprt_us:5.1f} us CPU per request, peak RSS {$rss_kb // 1024} MiB")
print(f"ratio nprt/wrk: {nprt_rps / wrk_rps:.2f} (load average before the run: $load)")
PY
