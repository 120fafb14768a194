#!/usr/bin/env bash
# Benchmarks the rotation functions on this machine and prints a Markdown table
# for each target, for the README: generic-rotation, then rds-rotation (single
# user) on a throwaway PostgreSQL and on a throwaway MariaDB server,
# redis-rotation on a throwaway Redis, ldap-rotation on a throwaway OpenLDAP,
# and iam-rotation on moto's IAM with authentication on (a second moto
# server). Each table
# has cold start, step latencies, peak RSS, Secrets Manager calls per rotation
# and binary size. Then the fleet target: one rotation-scheduler run starting
# rotations for 1,000 due secrets at RATE_PER_SECOND=${RATE:-20}, with the achieved
# rate against the allowed one, failures and Secrets Manager calls. RUNS (default
# 20) sets the number of runs per rotation-function target; extra arguments go to
# every `rotor bench`. Last, the package each function deploys as: built for arm64
# with cargo lambda, zipped, and its size (PACKAGES=0 skips this ~7 min build).
# A benchmark, not a test: it asserts no timings.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

scripts/setup.sh
printf '==> %s\n' "building release binaries" >&2
cargo build --release -p generic-rotation -p rds-rotation -p redis-rotation -p ldap-rotation -p iam-rotation -p rotation-scheduler -p rotor-cli --features rotor-cli/testbed

first=1
for target in generic rds-postgres rds-mariadb redis ldap iam; do
  case $target in
    generic) function=generic-rotation ;;
    redis) function=redis-rotation ;;
    ldap) function=ldap-rotation ;;
    iam) function=iam-rotation ;;
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

[ "${PACKAGES:-1}" = 0 ] && exit 0
printf '\n'
printf '==> %s\n' "packaging each function for arm64 (cargo lambda build --release --arm64 --output-format zip)" >&2
functions=(generic-rotation rds-rotation oauth-rotation redis-rotation ldap-rotation iam-rotation rotation-scheduler)
for function in "${functions[@]}"; do
  PATH="$root/.venv/bin:$PATH" cargo lambda build --release --arm64 --output-format zip --bin "$function" >&2
done
printf '| function, arm64 | zipped (MiB) | bootstrap, unzipped (MiB) |\n|---|---:|---:|\n'
for function in "${functions[@]}"; do
  .venv/bin/python - "$function" "target/lambda/$function/bootstrap.zip" <<'EOF'
import os, sys, zipfile
name, path = sys.argv[1:]
unzipped = sum(entry.file_size for entry in zipfile.ZipFile(path).infolist())
mib = 2**20
print(f"| {name} | {os.path.getsize(path) / mib:.1f} | {unzipped / mib:.1f} |")
EOF
done
