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
echo "==> building the function binaries the integration tests run"
cargo build --workspace --bins --locked
echo "==> cargo test"
cargo test --workspace --locked
