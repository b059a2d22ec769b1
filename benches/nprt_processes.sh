# Sourced by the bench scripts that run nprt servers in the background. Sets `work` (a temp
# folder, removed at exit with every process started here) and `nprt` (NPRT, or the release
# build, built first unless NPRT is set), and defines:
#   start NAME ARGS...  a background `nprt ARGS...` (its id in NAME.pid and killed at exit),
#                       waited for until its stdout says it is listening;
#   url NAME            the URL it listens on.
work=$(mktemp -d)
touch "$work/pids"
trap 'kill $(cat "$work/pids") $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

if [ -z "${NPRT:-}" ]; then
  cargo build --release -q
fi
nprt=${NPRT:-${CARGO_TARGET_DIR:-target}/release/nprt}

start() {
  local name=$1; shift
  "$nprt" "$@" > "$work/$name.out" 2> "$work/$name.err" &
  echo $! | tee "$work/$name.pid" >> "$work/pids"
  for _ in $(seq 100); do grep -q "listening on" "$work/$name.out" 2>/dev/null && return; sleep 0.05; done
  echo "$name did not start:"; cat "$work/$name.err"; exit 1
}
url() { awk '/listening on/ {print $NF}' "$work/$1.out"; }
