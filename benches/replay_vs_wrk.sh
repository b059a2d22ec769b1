#!/usr/bin/env bash
# Replay throughput side by side with wrk, against the same local testbed, at the same
# concurrency, in one run:
#   bash benches/replay_vs_wrk.sh [EXCHANGES] [CONCURRENCY]
# Needs wrk (Debian: apt-get install wrk) and GNU time (/usr/bin/time) for nprt's peak RSS.
# Loopback only; every load loop is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
c=${2:-64}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release -q
nprt=target/release/nprt

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
echo "testbed at $url; $n exchanges; concurrency $c; $(nproc) cores"

echo "== wrk: 10 s, $c connections, 2 threads"
timeout 60 wrk -t2 -c"$c" -d10s "$url/bench/1?q=1" | tee "$work/wrk.out"
wrk_rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")

echo "== nprt replay --max --concurrency $c"
/usr/bin/time -f "%M" -o "$work/rss" timeout 300 "$nprt" replay "$work/bench.gor" \
  --target "bench=$url" --max --concurrency "$c" 2> "$work/nprt.err"
cat "$work/nprt.err"
nprt_rps=$(sed -n 's/.*(\([0-9.]*\) exchanges\/s).*/\1/p' "$work/nprt.err")
rss_kb=$(cat "$work/rss")
echo
echo "wrk:  $wrk_rps requests/s"
echo "nprt: $nprt_rps requests/s, peak RSS $((rss_kb / 1024)) MiB"
python3 -c "print(f'ratio nprt/wrk: {float(\"$nprt_rps\") / float(\"$wrk_rps\"):.2f}')"
