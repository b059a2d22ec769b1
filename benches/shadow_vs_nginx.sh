#!/usr/bin/env bash
# The tee proxy side by side with nginx's own mirror module (Debian nginx-light), in one run:
# wrk through nginx+mirror and through `nprt shadow` to the same primary and canary testbeds,
# then the same with the canary slow (+50 ms) and down (nothing listening).
#   bash benches/shadow_vs_nginx.sh [SECONDS] [CONNECTIONS]
# Needs wrk and nginx-light (apt-get install wrk nginx-light). Loopback only; every load
# loop is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-64}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null; rm -rf "$work"' EXIT

cargo build --release -q
nprt=${CARGO_TARGET_DIR:-target}/release/nprt

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start NAME ARGS...: a background nprt process whose first stdout line ends in its URL.
start() {
  local name=$1; shift
  "$nprt" "$@" > "$work/$name.out" 2> "$work/$name.err" &
  for _ in $(seq 100); do grep -q "listening on" "$work/$name.out" 2>/dev/null && break; sleep 0.05; done
  grep "listening on" "$work/$name.out" | awk '{print $NF}' | sed 's#http://##'
}

primary=$(start primary testbed --listen 127.0.0.1:0)
canary_ok=$(start canary_ok testbed --listen 127.0.0.1:0)
canary_slow=$(start canary_slow testbed --listen 127.0.0.1:0 --latency 50ms)
canary_down=127.0.0.1:$(free_port)
baseline=$(start baseline testbed --listen 127.0.0.1:0)
echo "primary $primary; canaries: healthy $canary_ok, slow $canary_slow, down $canary_down"
echo "wrk: $secs s, $conns connections, 2 threads; $(nproc) cores; nginx $(nginx -v 2>&1 | sed 's#.*/##')"

# run LABEL URL: wrk, then one summary line "LABEL rps p50 p99".
run() {
  local c=${3:-$conns}
  timeout $((secs + 30)) wrk -t2 -c"$c" -d"${secs}s" --latency "http://$2/api/items/1" > "$work/wrk.out"
  python3 - "$1" "$work/wrk.out" <<'PY'
import re, sys
label, text = sys.argv[1], open(sys.argv[2]).read()
def ms(v):
    n, u = re.match(r"([\d.]+)(\w+)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1, "s": 1000}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
sock = re.search(r"Socket errors: (.*)", text)
print(f"{label:<28} {rps:>10.0f} req/s   p50 {p50:7.2f} ms   p99 {p99:7.2f} ms"
      + (f"   non-2xx {errs.group(1)}" if errs else "") + (f"   socket errors: {sock.group(1)}" if sock else ""))
PY
}

nginx_up() {
  local port; port=$(free_port)
  mkdir -p "$work/body" "$work/proxy" "$work/fastcgi" "$work/uwsgi" "$work/scgi"
  sed -e "s#@PORT@#127.0.0.1:$port#" -e "s#@PRIMARY@#$primary#" -e "s#@CANARY@#$1#" \
      -e "s#@DIR@#$work#g" benches/nginx-mirror.conf > "$work/nginx.conf"
  nginx -c "$work/nginx.conf" -p "$work" > "$work/nginx.out" 2>&1 &
  for _ in $(seq 100); do [ -f "$work/nginx.pid" ] && break; sleep 0.05; done
  sleep 0.2
  echo "127.0.0.1:$port"
}
nginx_down() { kill "$(cat "$work/nginx.pid")"; while [ -f "$work/nginx.pid" ]; do sleep 0.05; done; }

shadow_up() {
  start "shadow_$2" shadow --listen 127.0.0.1:0 --primary "http://$primary" --shadow "http://$1" \
    --shadow-timeout 10s --report-every 1h --keep-mirroring
}
echo
run "primary direct" "$primary"
run "primary direct, 4 conns" "$primary" 4
for state in ok slow down; do
  eval canary=\$canary_$state
  n=$(nginx_up "$canary"); run "nginx mirror, canary $state" "$n"
  run "nginx mirror, $state, 4 conns" "$n" 4; nginx_down
  s=$(shadow_up "$canary" "$state"); run "nprt shadow, canary $state" "$s"
  run "nprt shadow, $state, 4 conns" "$s" 4
  pkill -TERM -f "shadow --listen 127.0.0.1:0 --primary http://$primary --shadow http://$canary" || true
  sleep 1
  grep -h "requests .*mirrored" "$work/shadow_$state.err" | sed "s/^/    nprt shadow ($state): /" || true
done
# nprt with a baseline copy beside the healthy canary: every mirrored request is sent twice.
s=$(start shadow_baseline shadow --listen 127.0.0.1:0 --primary "http://$primary" \
  --shadow "http://$canary_ok" --shadow-baseline "http://$baseline" \
  --shadow-timeout 10s --report-every 1h --keep-mirroring)
run "nprt shadow + baseline copy" "$s"
run "nprt shadow + baseline, 4 conns" "$s" 4
pkill -TERM -f "shadow-baseline http://$baseline" || true
sleep 1
grep -h "requests .*mirrored" "$work/shadow_baseline.err" | sed "s/^/    nprt shadow (baseline): /" || true
