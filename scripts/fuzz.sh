#!/usr/bin/env bash
# Fuzzes rotor's parsers with cargo-fuzz (libFuzzer): every target in fuzz/
# for FUZZ_SECONDS seconds (default 30), then one line per target with the
# inputs run and whether it crashed. Exits non-zero when any target crashed.
#
# The machine has only the stable toolchain; cargo-fuzz's flags (-Zsanitizer,
# -Cpasses=sancov-module, ...) are nightly-only, so it runs with
# RUSTC_BOOTSTRAP=1. FUZZ_SANITIZER=none skips AddressSanitizer (our code has
# no unsafe; the sanitizer only matters for C dependencies).
#
#   FUZZ_SECONDS=60 bash scripts/fuzz.sh                  # every target
#   FUZZ_TARGETS="rds_secret oauth_client" bash scripts/fuzz.sh
#
# A crash leaves its input in fuzz/artifacts/<target>/; replay it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/crash-...
# Once it is fixed, copy it to fuzz/regressions/<target>/, named after its issue
# (fuzz/regressions/README.md): the test command then replays it on every run,
# with the seeds, through fuzz/checks (no instrumented build needed).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

seconds=${FUZZ_SECONDS:-30}
sanitizer=${FUZZ_SANITIZER:-address}
read -r -a targets <<<"${FUZZ_TARGETS:-rotation_event rds_secret redis_secret oauth_client generic_settings password_policy scheduler_policy ldap_secret scheduler_window iam_secret}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

echo "==> building the fuzz targets (sanitizer: $sanitizer)"
cargo fuzz build --sanitizer "$sanitizer"

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
summary=()
crashed=0
for target in "${targets[@]}"; do
  echo "==> fuzzing $target for ${seconds}s"
  corpus=fuzz/corpus/$target
  mkdir -p "$corpus"
  # New inputs go to the first directory; the committed seeds and regressions
  # are only read.
  dirs=("$corpus")
  for committed in "fuzz/seeds/$target" "fuzz/regressions/$target"; do
    if [ -d "$committed" ]; then dirs+=("$committed"); fi
  done
  log=$logs/$target.log
  status=0
  cargo fuzz run --sanitizer "$sanitizer" "$target" "${dirs[@]}" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1 || status=$?
  execs=$(awk '/^stat::number_of_executed_units:/ { n = $2 } END { print n + 0 }' "$log")
  artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
  if [ "$status" -ne 0 ] || [ -n "$artifact" ]; then
    crashed=1
    result="CRASH (exit $status) ${artifact:-}"
    # What the fuzzer said about it: the panic and the stack, briefly.
    grep -m 1 -A 12 -E "panicked at|ERROR: (libFuzzer|AddressSanitizer)" "$log" | sed 's/^/    /' || tail -n 20 "$log"
  else
    result="no crash"
  fi
  line=$(printf '%-18s %12s executions   %s' "$target" "$execs" "$result")
  echo "$line"
  summary+=("$line")
done

echo "==> fuzz summary (${seconds}s per target, sanitizer: $sanitizer)"
printf '%s\n' "${summary[@]}"
exit "$crashed"
