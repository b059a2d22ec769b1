#!/usr/bin/env bash
# Replay throughput side by side with wrk, against the same local testbed, at the same
# concurrency, in one run:
#   bash benches/replay_vs_wrk.sh [EXCHANGES] [CONCURRENCY]
# NPRT=path/to/nprt benchmarks that binary instead of building target/release/nprt.
# ROUNDS=N sets how many times each of them runs (default 5).
# Needs wrk (Debian: apt-get install wrk) and GNU time (/usr/bin/time) for nprt's peak RSS.
# Loopback only; every load loop is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
c=${2:-64}
rounds=${ROUNDS:-5}
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

# This machine's speed drifts by tens of percent from one second to the next (a shared
# virtual machine), so wrk and nprt take turns, each running about as long as the other
# (wrk 2 s; nprt's 100,000 requests take 1.5-2.5 s), and every round gives a ratio.
: > "$work/rounds"
for round in $(seq "$rounds"); do
  # The request nprt sends, but one path: same request line length, same header fields.
  /usr/bin/time -f "%U %S" -o "$work/wrk.cpu" timeout 60 wrk -t2 -c"$c" -d2s \
    -H "User-Agent: bench" "$url/bench/1?q=12345" > "$work/wrk.out"
  /usr/bin/time -f "%M %U %S" -o "$work/nprt.time" timeout 300 "$nprt" replay "$work/bench.gor" \
    --target "bench=$url" --max --concurrency "$c" --quiet 2> "$work/nprt.err"
  wrk_rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")
  wrk_n=$(awk '/requests in/ {print $1}' "$work/wrk.out")
  nprt_rps=$(sed -n 's/.*(\([0-9.]*\) exchanges\/s).*/\1/p' "$work/nprt.err")
  if [ -z "$wrk_rps" ] || [ -z "$nprt_rps" ]; then
    cat "$work/wrk.out" "$work/nprt.err"
    exit 1
  fi
  read -r rss_kb nprt_user nprt_sys < "$work/nprt.time"
  read -r wrk_user wrk_sys < "$work/wrk.cpu"
  echo "$round $wrk_rps $wrk_n $wrk_user $wrk_sys $nprt_rps $nprt_user $nprt_sys $rss_kb" \
    >> "$work/rounds"
done
echo "last nprt run:"
cat "$work/nprt.err"

# Throughput depends on what else the machine runs; the CPU time each client spends per
# request (user + system) depends much less on it.
python3 - "$work/rounds" "$n" "$load" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
n = int(sys.argv[2])
print("round   wrk req/s  us CPU/req   nprt req/s  us CPU/req  ratio")
ratios, rss = [], []
for r in rows:
    wrk_rps, wrk_n, wrk_cpu = float(r[1]), float(r[2]), float(r[3]) + float(r[4])
    nprt_rps, nprt_cpu, kb = float(r[5]), float(r[6]) + float(r[7]), int(r[8])
    ratios.append(nprt_rps / wrk_rps)
    rss.append(kb // 1024)
    print(f"{r[0]:>5} {wrk_rps:11.0f} {wrk_cpu / wrk_n * 1e6:11.1f} {nprt_rps:12.0f} "
          f"{nprt_cpu / n * 1e6:11.1f} {ratios[-1]:6.2f}")
print(f"ratio nprt/wrk: median {statistics.median(ratios):.2f} (min {min(ratios):.2f}, "
      f"max {max(ratios):.2f}) over {len(ratios)} rounds; nprt peak RSS {max(rss)} MiB; "
      f"load average before: {sys.argv[3]}")
PY
