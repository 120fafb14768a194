#!/usr/bin/env bash
# Benchmarks generic-rotation on this machine and prints a Markdown table for the
# README: cold start, step latencies, peak RSS, Secrets Manager calls per
# rotation, binary size. RUNS (default 20) sets the number of runs; extra
# arguments go to `rotor bench`. A benchmark, not a test: it asserts no timings.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

scripts/setup.sh
printf '==> %s\n' "building release binaries" >&2
cargo build --release -p generic-rotation -p rotor-cli
exec target/release/rotor bench --function target/release/generic-rotation --runs "${RUNS:-20}" "$@"
