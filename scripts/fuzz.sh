#!/usr/bin/env bash
# Coverage-guided fuzzing of every aksnet input with libFuzzer (the
# harness in fuzz/, target bodies in crates/fuzz). Builds with the nightly
# toolchain and the same instrumentation cargo-fuzz passes (SanitizerCoverage,
# inline 8-bit counters, compare tracing), so cargo-fuzz need not be
# installed; `cargo fuzz run TARGET` works too where it is.
#
#   scripts/fuzz.sh                  # every target, 10 s each (what CI runs)
#   scripts/fuzz.sh --seconds 600    # the long run
#   scripts/fuzz.sh --seconds 60 cni_config
#
# New inputs that reach new code are kept in fuzz/target/corpus/TARGET/
# (copy useful ones to fuzz/corpus/TARGET/); a crash is written to fuzz/artifacts/TARGET/ and the run
# fails: keep it under fuzz/regressions/TARGET/ so `cargo test -p
# aksnet-fuzz` replays it, and fix the bug. Prints one line per target with
# the executions libFuzzer reports.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=10
targets=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if [ "${#targets[@]}" -eq 0 ]; then
  targets=($(ls fuzz/fuzz_targets | sed 's/\.rs$//'))
fi

for d in "$HOME/.cargo/bin" /usr/local/cargo/bin; do
  [ -x "$d/cargo" ] && PATH="$d:$PATH"
done
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
  exit 1
fi
command -v g++ >/dev/null || { echo "fuzz: g++ is missing (scripts/setup.sh installs it)" >&2; exit 1; }

triple=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
export CARGO_TARGET_DIR=${AKSNET_FUZZ_TARGET_DIR:-$PWD/fuzz/target}
echo "fuzz: building ${#targets[@]} targets (nightly, libFuzzer)" >&2
cargo +nightly build --quiet --release --manifest-path fuzz/Cargo.toml --target "$triple" \
  $(printf -- '--bin %s ' "${targets[@]}")

status=0
printf '%-15s %12s %10s %8s\n' target executions exec/s seconds
for t in "${targets[@]}"; do
  # New inputs go to a scratch corpus (under the target dir); the kept
  # corpus and the regressions are read as seeds.
  work="$CARGO_TARGET_DIR/corpus/$t"
  mkdir -p "$work" "fuzz/corpus/$t" "fuzz/artifacts/$t"
  log=$(mktemp)
  # -rss_limit_mb: the IPAM target writes files; the others stay small.
  if ! "$CARGO_TARGET_DIR/$triple/release/$t" -max_total_time="$seconds" -rss_limit_mb=2048 \
       -max_len=4096 -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" \
       "$work" "fuzz/corpus/$t" \
       $( [ -d "fuzz/regressions/$t" ] && echo "fuzz/regressions/$t" ) >"$log" 2>&1; then
    echo "fuzz: $t FAILED; the input is in fuzz/artifacts/$t/:" >&2
    tail -40 "$log" >&2
    status=1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  if [ -z "$runs" ]; then
    runs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
  fi
  persec=$(( ${runs:-0} / (seconds > 0 ? seconds : 1) ))
  printf '%-15s %12s %10s %8s\n' "$t" "${runs:-?}" "$persec" "$seconds"
  rm -f "$log"
done
exit $status
