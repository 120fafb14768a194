#!/usr/bin/env bash
# Installs what rotor's demo and tests need on a fresh machine, idempotently:
# the Rust components (rustfmt, clippy) and the aarch64 target, a Python venv
# with moto's server, cargo-lambda and Zig, the template's checkers (SAM CLI,
# cfn-lint, checkov, parliament) in venvs under .venv-iac, and, when missing, the
# PostgreSQL 15 and MariaDB packages the database tests use, the glewlwyd
# package the OAuth tests use, and Samba's AD domain controller, OpenLDAP's
# slapd and their clients (ldapsearch, kinit) the directory tests use.
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

# sam build cross-compiles the functions for arm64 (Graviton): cargo-lambda links
# with Zig (PyPI's ziglang), and rustc needs the aarch64 standard library.
if ! "$venv/bin/python" -c 'import ziglang' >/dev/null 2>&1; then
  say "installing ziglang into $venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'ziglang>=0.13,<0.18'
fi
if command -v rustup >/dev/null 2>&1; then
  rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu || {
    say "installing the Rust target aarch64-unknown-linux-gnu"
    rustup target add aarch64-unknown-linux-gnu
  }
fi

# The template's tools (scripts/check-template.sh): SAM CLI with cfn-lint, and
# checkov. Each pins boto3 to a series that the other, and moto above, refuse,
# so each gets a venv of its own under .venv-iac.
iac="$root/.venv-iac"
if [ ! -x "$iac/sam/bin/sam" ] || [ ! -x "$iac/sam/bin/cfn-lint" ]; then
  say "installing aws-sam-cli and cfn-lint into $iac/sam"
  [ -x "$iac/sam/bin/python" ] || python3 -m venv "$iac/sam"
  "$iac/sam/bin/pip" install --quiet --disable-pip-version-check 'aws-sam-cli>=1.170,<2' 'cfn-lint>=1.52,<2'
fi
if [ ! -x "$iac/checkov/bin/checkov" ]; then
  say "installing checkov into $iac/checkov"
  [ -x "$iac/checkov/bin/python" ] || python3 -m venv "$iac/checkov"
  "$iac/checkov/bin/pip" install --quiet --disable-pip-version-check 'checkov>=3.3,<4'
fi
# parliament, the IAM policy linter, pins its own boto3 and jsonschema: a venv of
# its own too.
if [ ! -x "$iac/parliament/bin/parliament" ]; then
  say "installing parliament into $iac/parliament"
  [ -x "$iac/parliament/bin/python" ] || python3 -m venv "$iac/parliament"
  "$iac/parliament/bin/pip" install --quiet --disable-pip-version-check 'parliament>=1.6.4,<2'
fi

# Debian packages are installed as root (or with sudo), and only the packages are
# wanted: the system services they bring are neither started nor enabled.
# root_or_explain MISSING PACKAGES [FIRST]: sets as_root ("" or "sudo"), or says
# what to run as root (FIRST, if given, before apt-get) and stops.
as_root=""
root_or_explain() {
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    as_root=""
  elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then
    as_root="sudo"
  else
    echo "missing: $1" >&2
    echo "install them as root (Debian 12 packages), then run this again:" >&2
    [ -z "${3:-}" ] || echo "  $3" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends $2" >&2
    exit 1
  fi
}
# install_without_services "PACKAGE:SERVICE ..." PACKAGE...: installs the packages
# with a policy-rc.d answering 101, which keeps the maintainer scripts from
# starting services; afterwards it disables the services of packages installed
# only now (ones that were already there keep their state). apt-get update runs
# once per run of this script.
apt_updated=""
policy=/usr/sbin/policy-rc.d
install_without_services() {
  local services=$1 pair new_services=""
  shift
  for pair in $services; do
    dpkg-query -W -f='${Status}' "${pair%%:*}" 2>/dev/null | grep -q 'ok installed' || new_services+=" ${pair#*:}"
  done
  local own_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# rotor scripts/setup.sh: start no services while installing\nexit 101\n' |
      $as_root tee "$policy" >/dev/null
    $as_root chmod 755 "$policy"
    own_policy=1
    trap '$as_root rm -f "$policy"' EXIT
  fi
  if [ -z "$apt_updated" ]; then
    $as_root apt-get update
    apt_updated=1
  fi
  $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
  if [ -n "$own_policy" ]; then
    $as_root rm -f "$policy"
    trap - EXIT
  fi
  local service
  for service in $new_services; do
    if command -v systemctl >/dev/null 2>&1; then
      $as_root systemctl disable "$service" >/dev/null 2>&1 || true
    fi
    if command -v update-rc.d >/dev/null 2>&1 && [ -e "/etc/init.d/$service" ]; then
      $as_root update-rc.d "$service" disable >/dev/null 2>&1 || true
    fi
  done
}

# PostgreSQL 15 and MariaDB, whose throwaway servers the database tests start
# themselves (tools/testbed/src/db/), with their CLI clients.
db_missing=()
for tool in /usr/lib/postgresql/15/bin/initdb /usr/lib/postgresql/15/bin/psql /usr/sbin/mariadbd /usr/bin/mariadb-install-db; do
  [ -x "$tool" ] || db_missing+=("$tool")
done
for tool in psql mariadb; do
  command -v "$tool" >/dev/null 2>&1 || db_missing+=("$tool")
done
if [ ${#db_missing[@]} -gt 0 ]; then
  db_packages="postgresql-15 postgresql-client-15 mariadb-server mariadb-client"
  root_or_explain "${db_missing[*]}" "$db_packages"
  say "installing $db_packages (missing: ${db_missing[*]})"
  install_without_services "postgresql-15:postgresql mariadb-server:mariadb" $db_packages
fi

# glewlwyd, the OAuth 2.0 authorization server whose throwaway instances the
# OAuth tests start themselves (tools/testbed/src/oauth_server/), with the SQLite
# CLI and the SQL init script they use. debconf is told "No configuration", so
# that the package sets up no database of its own (dbconfig-common) either.
oauth_missing=()
for path in /usr/bin/glewlwyd /usr/bin/sqlite3 /usr/share/dbconfig-common/data/glewlwyd/install/sqlite3; do
  [ -e "$path" ] || oauth_missing+=("$path")
done
if [ ${#oauth_missing[@]} -gt 0 ]; then
  preseed="glewlwyd glewlwyd/config_type select No configuration"
  root_or_explain "${oauth_missing[*]}" glewlwyd "echo '$preseed' | debconf-set-selections"
  say "installing glewlwyd (missing: ${oauth_missing[*]})"
  echo "$preseed" | $as_root debconf-set-selections
  install_without_services "glewlwyd:glewlwyd" glewlwyd
fi

# Samba's Active Directory domain controller, OpenLDAP's slapd, and the clients
# that check passwords independently (ldapsearch, ldapmodify, kinit), for
# ldap-rotation's tests, which provision and start their own throwaway servers
# (tools/testbed/src/samba_dc.rs, openldap.rs). The packaged services (smbd,
# nmbd, winbind, samba-ad-dc, slapd) are neither started nor enabled.
ldap_missing=()
for path in /usr/sbin/samba /usr/bin/samba-tool /usr/share/samba/setup/ad-schema /usr/sbin/slapd /usr/bin/ldapsearch /usr/bin/ldapmodify /usr/bin/kinit; do
  [ -e "$path" ] || ldap_missing+=("$path")
done
if [ ${#ldap_missing[@]} -gt 0 ]; then
  ldap_packages="samba samba-ad-dc samba-ad-provision winbind slapd ldap-utils krb5-user"
  root_or_explain "${ldap_missing[*]}" "$ldap_packages" "echo 'slapd slapd/no_configuration boolean true' | debconf-set-selections"
  say "installing $ldap_packages (missing: ${ldap_missing[*]})"
  echo "slapd slapd/no_configuration boolean true" | $as_root debconf-set-selections
  install_without_services "samba:smbd samba:nmbd samba-ad-dc:samba-ad-dc winbind:winbind slapd:slapd" $ldap_packages
fi

# OpenSSH's server, which generic-rotation's key-pair test starts as a throwaway
# sshd on 127.0.0.1 (its own host key, config and authorized_keys file) to log
# in with a rotated key and to see the revoked one refused. The packaged ssh
# service is neither started nor enabled.
ssh_missing=()
for path in /usr/sbin/sshd /usr/bin/ssh /usr/bin/ssh-keygen; do
  [ -e "$path" ] || ssh_missing+=("$path")
done
if [ ${#ssh_missing[@]} -gt 0 ]; then
  root_or_explain "${ssh_missing[*]}" "openssh-server openssh-client"
  say "installing openssh-server openssh-client (missing: ${ssh_missing[*]})"
  install_without_services "openssh-server:ssh" openssh-server openssh-client
fi
