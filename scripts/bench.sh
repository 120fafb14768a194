#!/usr/bin/env bash
# Benchmarks the rotation functions on this machine and prints a Markdown table
# for each target, for the README: generic-rotation, then rds-rotation (single
# user) on a throwaway PostgreSQL and on a throwaway MariaDB server. Each table
# has cold start, step latencies, peak RSS, Secrets Manager calls per rotation
# and binary size. Then the fleet target: one rotation-scheduler run starting
# rotations for 1,000 due secrets at RATE_PER_SECOND=${RATE:-20}, with the achieved
# rate against the allowed one, failures and Secrets Manager calls. RUNS (default
# 20) sets the number of runs per rotation-function target; extra arguments go to
# every `rotor bench`. A benchmark, not a test: it asserts no timings.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

scripts/setup.sh
printf '==> %s\n' "building release binaries" >&2
cargo build --release -p generic-rotation -p rds-rotation -p rotation-scheduler -p rotor-cli

first=1
for target in generic rds-postgres rds-mariadb; do
  case $target in
    generic) function=generic-rotation ;;
    *) function=rds-rotation ;;
  esac
  [ "$first" = 1 ] || printf '\n'
  first=0
  printf '==> %s\n' "rotor bench --target $target" >&2
  target/release/rotor bench --target "$target" --function "target/release/$function" \
    --runs "${RUNS:-20}" "$@"
done

printf '\n'
printf '==> %s\n' "rotor bench --target fleet" >&2
target/release/rotor bench --target fleet --function target/release/rotation-scheduler \
  --rate "${RATE:-20}" "$@"
