#!/usr/bin/env bash
# A/A check of the live judge under HTTP/2 load: `nprt shadow --keep-mirroring` in front of two
# identical `nprt testbed`s, h2load GETs over h2c at a fixed rate; prints each run's verdict.
# An identical canary should never FAIL; at high load on a small machine it sometimes does (a
# known, open problem: nprt's own queue waits and the runtime's lag stay small when it happens).
#   bash benches/shadow_aa_h2.sh [RPS_PER_CLIENT=2000] [RUNS=4]
# 4 h2load clients x 8 streams, 8 s per run. NPRT=path/to/nprt uses that binary instead of
# building it (release). Needs h2load (apt-get install nghttp2-client). Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
rps=${1:-2000}
runs=${2:-4}
# work, nprt, start NAME ARGS... and url NAME.
source benches/nprt_processes.sh

start primary testbed --listen 127.0.0.1:0
start canary testbed --listen 127.0.0.1:0
echo "A/A: $runs runs of 8 s at $((rps * 4)) req/s; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for run in $(seq "$runs"); do
  start "shadow$run" shadow --listen 127.0.0.1:0 --primary "$(url primary)" \
    --shadow "$(url canary)" --keep-mirroring --report-every 1h
  timeout 60 h2load -D 8 -c 4 -m 8 --rps "$rps" "$(url "shadow$run")/api/items/1" > "$work/h2load.out"
  kill -TERM "$(cat "$work/shadow$run.pid")"
  wait "$(cat "$work/shadow$run.pid")" 2>/dev/null || true
  verdict=$(grep -E '^(PASS|FAIL|INCONCLUSIVE)' "$work/shadow$run.out" | cut -d: -f1)
  rate=$(awk '/finished in/ {print $4}' "$work/h2load.out")
  echo "run $run: $rate req/s, verdict $verdict"
done
