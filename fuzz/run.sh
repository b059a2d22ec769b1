#!/bin/sh
# Runs one fuzz target: fuzz/run.sh TARGET SECONDS [extra libFuzzer flags]
#
# Targets: http_framing gor_reader pcap_capture manifest_rewrite judge_file scenario_file h2_decode
# Needs cargo-fuzz (`cargo install cargo-fuzz`). Works on the stable toolchain: cargo-fuzz
# passes nightly-only flags to rustc, which RUSTC_BOOTSTRAP=1 allows.
# The corpus grows in fuzz/corpus/TARGET (not committed), seeded from the test fixtures;
# crashes land in fuzz/artifacts/TARGET. Keep every reproducer as a test under
# tests/fixtures/fuzz/ (see tests/hardening_fuzz.rs).
set -eu
target=${1:?usage: fuzz/run.sh TARGET SECONDS}
seconds=${2:-60}
[ $# -ge 2 ] && shift 2 || shift $#
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
corpus=$here/corpus/$target
mkdir -p "$corpus"

# Seeds from the repository's fixtures. Targets that read a control byte first get each
# fixture behind a zero byte; scenario files behind an empty --set line.
seed() { # seed FILE [prefix|newline]
    name=$(basename "$1")
    if [ "${2:-}" = prefix ]; then
        { printf '\000'; cat "$1"; } > "$corpus/seed-$name"
    elif [ "${2:-}" = newline ]; then
        { printf '\n'; cat "$1"; } > "$corpus/seed-$name"
    else
        cp "$1" "$corpus/seed-$name"
    fi
}
case $target in
    http_framing) for f in "$here"/seeds/http_framing/*; do seed "$f" prefix; done ;;
    gor_reader)
        # The first few records of the bundled recording, plain and gzip.
        head -c 6000 "$root/replay/demo.gor" > "$corpus/seed-demo.gor.part"
        { printf '\000'; cat "$corpus/seed-demo.gor.part"; } > "$corpus/seed-demo"
        { printf '\004'; gzip -c "$corpus/seed-demo.gor.part"; } > "$corpus/seed-demo-gz"
        rm "$corpus/seed-demo.gor.part" ;;
    pcap_capture) for f in "$root"/tests/fixtures/capture/*.pcap*; do seed "$f"; done ;;
    manifest_rewrite) for f in "$root"/kubernetes/example-app/*; do seed "$f" prefix; done ;;
    judge_file) for f in "$here"/seeds/judge_file/*; do seed "$f"; done ;;
    h2_decode) for f in "$here"/seeds/h2_decode/*; do seed "$f"; done ;;
    scenario_file) for f in "$root"/scenarios/*.toml; do seed "$f" newline; done ;;
    *) echo "unknown target $target" >&2; exit 2 ;;
esac
# Earlier findings, kept as regression tests, seed the corpus too.
for f in "$root"/tests/fixtures/fuzz/"$target"-*; do
    [ -e "$f" ] && cp "$f" "$corpus/"
done

cd "$here"
# Sanitizer none: the crate has no unsafe code of its own on these paths, and the fuzzer
# runs several times faster; overflow checks and debug assertions stay on.
# NPRT_FUZZ_BIN_DIR runs binaries built earlier instead (while the sources change).
bin_dir=${NPRT_FUZZ_BIN_DIR:-}
if [ -z "$bin_dir" ]; then
    RUSTC_BOOTSTRAP=1 cargo fuzz build --sanitizer none "$target"
    bin_dir=$here/target/$(rustc -vV | sed -n 's/^host: //p')/release
fi
mkdir -p "$here/artifacts/$target"
exec "$bin_dir/$target" "$corpus" -artifact_prefix="$here/artifacts/$target/" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 "$@"
