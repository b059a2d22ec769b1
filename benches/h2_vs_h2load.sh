#!/usr/bin/env bash
# HTTP/2 side by side with h2load (Debian nghttp2-client), in one run:
#   1. replay: `nprt replay --max` of a recording of unary gRPC calls and h2load sending the
#      same call, to the same `nprt testbed --grpc`, with the same streams in flight;
#      requests/s, their ratio, and the CPU time each client spends per request;
#   2. shadow: h2load GETs over h2c (prior knowledge) straight to a testbed and through
#      `nprt shadow` (copies to a second testbed), with and without --keep-mirroring;
#      requests/s and mean latency, and the ratio through/direct.
#   bash benches/h2_vs_h2load.sh [EXCHANGES] [IN_FLIGHT]
# NPRT=path/to/nprt benchmarks that binary instead of building it (release).
# ROUNDS=N sets how many times each measurement runs (default 3); SECS the seconds of each
# h2load run (default 2). With the defaults the whole script takes under a minute (after
# the build).
# Needs h2load (apt-get install nghttp2-client) and GNU time (/usr/bin/time).
# Loopback only; every load loop is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
inflight=${2:-64}
rounds=${ROUNDS:-3}
secs=${SECS:-2}
# work, nprt, start NAME ARGS... and url NAME.
source benches/nprt_processes.sh

# How the in-flight count is matched. `nprt replay --max --concurrency N` runs its N lanes on
# min(cores, N) threads, and the lanes of one thread share one HTTP/2 connection per target:
# T connections of N/T streams each. h2load gets the same: -t T threads, -c T connections,
# -m N/T streams per connection.
threads=$(nproc)
[ "$threads" -gt "$inflight" ] && threads=$inflight
streams=$((inflight / threads))
if [ $((streams * threads)) -ne "$inflight" ]; then
  echo "note: $inflight in flight is not a multiple of $threads threads; h2load has $((streams * threads))"
fi
h2load_shape=(-t "$threads" -c "$threads" -m "$streams")

# A recording of n unary calls to /echo.Echo/Call as the capture writes HTTP/2 exchanges
# (HTTP/1.1 form with the X-Nprt-Protocol: HTTP/2 marker), and h2load's body: the same
# gRPC-framed message (flag 0, 4-byte big-endian length, the message).
python3 - "$work/grpc.gor" "$work/msg.bin" "$n" <<'PY'
import struct, sys
path, msgpath, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
sep = b"\n\xf0\x9f\x90\xb5\xf0\x9f\x99\x88\xf0\x9f\x99\x89\n"
t0 = 1_700_000_000_000_000_000
msg = b"\x0a\x1ehello from the h2 benchmark!!!"
body = b"\x00" + struct.pack(">I", len(msg)) + msg
open(msgpath, "wb").write(body)
head = (b"POST /echo.Echo/Call HTTP/1.1\r\nHost: bench\r\nContent-Type: application/grpc\r\n"
        b"TE: trailers\r\nUser-Agent: bench\r\nX-Nprt-Protocol: HTTP/2\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode())
with open(path, "wb") as f:
    for i in range(n):
        f.write(f"1 {i:024x} {t0 + i * 1000} 0\n".encode() + head + body + sep)
PY

start grpc testbed --grpc --listen 127.0.0.1:0
grpc=$(url grpc)
echo "HTTP/2 replay: $n gRPC calls, $inflight in flight ($threads connections x $streams streams);" \
  "$(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg); h2load $(h2load --version | awk '{print $NF}')"

# h2load_run OUT ARGS...: h2load for $secs s, its CPU time (user sys) in OUT.cpu.
h2load_run() {
  local out=$1; shift
  /usr/bin/time -f "%U %S" -o "$out.cpu" timeout $((secs + 30)) h2load -D "$secs" \
    "${h2load_shape[@]}" "$@" > "$out"
  if ! grep -q " 0 failed, 0 errored" "$out"; then cat "$out"; exit 1; fi
}
# h2load_stats OUT: "req/s requests mean_latency_ms cpu_seconds".
h2load_stats() {
  python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
rps = re.search(r"finished in [\d.]+s, ([\d.]+) req/s", text).group(1)
done = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", text).group(1)
mean = re.search(r"time for request:\s+\S+\s+\S+\s+(\S+)", text).group(1)
n, unit = re.match(r"([\d.]+)(\w+)", mean).groups()
ms = float(n) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
user, sys_ = open(sys.argv[1] + ".cpu").read().split()[-2:]
print(rps, done, ms, float(user) + float(sys_))
PY
}

# This machine's speed drifts from one second to the next (a shared virtual machine), so
# h2load and nprt take turns, and every round gives a ratio.
: > "$work/replay.rows"
for round in $(seq "$rounds"); do
  h2load_run "$work/h2load.out" -H "content-type: application/grpc" -H "te: trailers" \
    -d "$work/msg.bin" "$grpc/echo.Echo/Call"
  /usr/bin/time -f "%U %S" -o "$work/nprt.cpu" timeout 300 "$nprt" replay "$work/grpc.gor" \
    --target "grpc=$grpc" --max --concurrency "$inflight" --methods all \
    > /dev/null 2> "$work/nprt.err"
  nprt_rps=$(sed -n 's/.*(\([0-9.]*\) exchanges\/s).*/\1/p' "$work/nprt.err")
  if [ -z "$nprt_rps" ] || ! grep -q " 0 without response, status 200×$n\$" "$work/nprt.err"; then
    cat "$work/nprt.err"
    exit 1
  fi
  read -r nprt_user nprt_sys < <(tail -1 "$work/nprt.cpu")
  echo "$round $(h2load_stats "$work/h2load.out") $nprt_rps $nprt_user $nprt_sys" \
    >> "$work/replay.rows"
done

# CPU per request: user + system time over requests answered. nprt's includes reading the
# recording and keeping the observations, which h2load does not do.
python3 - "$work/replay.rows" "$n" <<'PY'
import statistics, sys
n = int(sys.argv[2])
print("round  h2load req/s  us CPU/req   nprt req/s  us CPU/req  nprt/h2load")
ratios = []
for r in (line.split() for line in open(sys.argv[1])):
    h_rps, h_n, h_cpu = float(r[1]), int(r[2]), float(r[4])
    n_rps, n_cpu = float(r[5]), float(r[6]) + float(r[7])
    ratios.append(n_rps / h_rps)
    print(f"{r[0]:>5} {h_rps:13.0f} {h_cpu / h_n * 1e6:11.1f} {n_rps:12.0f} "
          f"{n_cpu / n * 1e6:11.1f} {ratios[-1]:12.2f}")
print(f"ratio nprt/h2load: median {statistics.median(ratios):.2f} "
      f"(min {min(ratios):.2f}, max {max(ratios):.2f}) over {len(ratios)} rounds")
PY

# 2. The shadow proxy's HTTP/2 overhead: the same GET load straight to a testbed and through
# `nprt shadow`, which sends it on to that testbed over HTTP/2 (it speaks it) and a copy of
# it to another testbed.
start primary testbed --listen 127.0.0.1:0
start canary testbed --listen 127.0.0.1:0
start stop_at_fail shadow --listen 127.0.0.1:0 --primary "$(url primary)" \
  --shadow "$(url canary)" --report-every 1h
start keep_mirroring shadow --listen 127.0.0.1:0 --primary "$(url primary)" \
  --shadow "$(url canary)" --report-every 1h --keep-mirroring
echo
echo "shadow over h2c: h2load GET, $secs s per run, $inflight in flight ($threads connections x $streams streams)"
: > "$work/shadow.rows"
for round in $(seq "$rounds"); do
  for via in primary stop_at_fail keep_mirroring; do
    h2load_run "$work/h2load.out" "$(url "$via")/api/items/1"
    echo "$round $via $(h2load_stats "$work/h2load.out")" >> "$work/shadow.rows"
  done
done
python3 - "$work/shadow.rows" <<'PY'
import sys
rows = [line.split() for line in open(sys.argv[1])]
direct = {r[0]: float(r[2]) for r in rows if r[1] == "primary"}
names = {"primary": "direct to the testbed", "stop_at_fail": "nprt shadow",
         "keep_mirroring": "nprt shadow --keep-mirroring"}
print("round  path                            req/s  mean ms  through/direct")
for r in rows:
    ratio = "" if r[1] == "primary" else f"{float(r[2]) / direct[r[0]]:14.2f}"
    print(f"{r[0]:>5}  {names[r[1]]:<28} {float(r[2]):8.0f} {float(r[4]):8.2f}  {ratio}")
PY
# Stopped, each proxy prints what it mirrored.
kill "$(cat "$work/stop_at_fail.pid")" "$(cat "$work/keep_mirroring.pid")" 2>/dev/null || true
sleep 1
# Without --keep-mirroring the proxy stops mirroring at the judge's first fail (this load
# saturates the machine, and the judge may fail even an identical canary on latency): its
# rows then measure a proxy that forwards only. How many requests each mirrored:
for via in stop_at_fail keep_mirroring; do
  grep -h "requests .*mirrored" "$work/$via.err" | sed "s/^/    nprt shadow ($via): /" || true
  grep -h "^judge: fail" "$work/$via.err" | sed "s/^/    nprt shadow ($via): /" || true
done
