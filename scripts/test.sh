#!/usr/bin/env bash
# Installs what is needed, then runs every check: formatting, clippy, and all
# tests (unit, property, contract on the in-memory store and on moto, and the
# real function binaries over the Lambda Runtime API). CI runs exactly this.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

"$root/scripts/setup.sh"

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
"$root/scripts/check-template.sh" # cfn-lint, sam validate, checkov, events/, sam build of every function (arm64)
echo "==> building the function binaries (and rotor-core's example function) the integration tests run"
cargo build --workspace --bins --examples --locked
echo "==> cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked 2>&1 | tee "$log" || status=$?
# One closing line over every test binary (cargo prints one per binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
