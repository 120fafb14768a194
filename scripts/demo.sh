#!/usr/bin/env bash
# Installs what is needed, then rotates sample secrets end to end on this
# machine (moto as Secrets Manager, the real generic-rotation binary behind a
# local Lambda Runtime API) and prints a short report. No AWS account needed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

"$root/scripts/setup.sh"
echo "==> building rotor (first build takes a few minutes)" >&2
cargo build --workspace --bins --features rotor-cli/testbed --locked --quiet
exec "$root/target/debug/rotor" demo
