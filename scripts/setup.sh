#!/usr/bin/env bash
# Installs what rotor's demo and tests need on a fresh machine, idempotently:
# the Rust components (rustfmt, clippy) and a Python venv with moto's server.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

say() { printf '==> %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install Rust with rustup first (https://rustup.rs), then run this again." >&2
  exit 1
fi
if command -v rustup >/dev/null 2>&1; then
  for component in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$component" || {
      say "installing the Rust component $component"
      rustup component add "$component"
    }
  done
fi

# moto's server, pinned to the series the tests were written against.
moto_spec='moto[server]>=5.2,<5.3'
venv="$root/.venv"
if [ ! -x "$venv/bin/python" ]; then
  say "creating the Python venv $venv"
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import moto.server, flask' >/dev/null 2>&1; then
  say "installing $moto_spec into $venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$moto_spec"
fi
# cargo-lambda's Lambda emulator serves the Invoke API the runner's --invoke mode speaks.
if [ ! -x "$venv/bin/cargo-lambda" ]; then
  say "installing cargo-lambda into $venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'cargo-lambda>=1.8,<2'
fi
