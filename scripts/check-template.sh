#!/usr/bin/env bash
# Checks template.yaml and events/ without an AWS account or any call to AWS:
# cfn-lint, `sam validate --lint`, checkov (no failed check; skips are justified
# in the template), the tests over the template as deployed (tests/template/:
# the SAM translator's output for several parameter sets, compared with what
# the README documents), parliament over every IAM policy those parameter sets
# deploy, and the sample events' shape. Then, unless
# ROTOR_SKIP_SAM_BUILD=1, `sam build` compiles the functions for the template's
# default architecture (arm64) and prints each one's zipped size.
#
#   scripts/check-template.sh                          # every function
#   scripts/check-template.sh GenericRotationFunction  # only the ones named
#
# Run scripts/setup.sh first (scripts/test.sh does).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

sam_venv="$root/.venv-iac/sam"
checkov_venv="$root/.venv-iac/checkov"
parliament_venv="$root/.venv-iac/parliament"
for tool in "$sam_venv/bin/sam" "$sam_venv/bin/cfn-lint" "$checkov_venv/bin/checkov" "$parliament_venv/bin/parliament" "$root/.venv/bin/cargo-lambda"; do
  [ -x "$tool" ] || { echo "missing $tool: run scripts/setup.sh first" >&2; exit 1; }
done

# Nothing here may reach AWS: a placeholder region, no instance-metadata
# credential lookups, no telemetry, and checkov without its platform download.
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export AWS_EC2_METADATA_DISABLED=true
export SAM_CLI_TELEMETRY=0

echo "==> cfn-lint template.yaml"
"$sam_venv/bin/cfn-lint" template.yaml
echo "==> sam validate --lint"
"$sam_venv/bin/sam" validate --lint --template template.yaml
echo "==> checkov (cloudformation)"
"$checkov_venv/bin/checkov" -f template.yaml --framework cloudformation --skip-download --compact --quiet

echo "==> tests over the translated template (tests/template)"
"$sam_venv/bin/python" -m unittest discover --start-directory tests/template --top-level-directory tests/template
echo "==> parliament (IAM policies, as deployed for each parameter set of the tests)"
policies=$(mktemp -d)
trap 'rm -rf "$policies"' EXIT
"$sam_venv/bin/python" tests/template/dump_policies.py "$policies"
"$parliament_venv/bin/python" tests/template/lint_policies.py "$policies"

echo "==> sample events"
"$sam_venv/bin/python" - <<'EOF'
# Every function in the template has events/<binary>/: the four steps for a
# rotation function, a scheduled run (and others) for the scheduler; each has
# the fields the function reads.
import json, pathlib, sys
from samtranslator.yaml_helper import yaml_parse

template = yaml_parse(pathlib.Path("template.yaml").read_text())
steps = ["createSecret", "setSecret", "testSecret", "finishSecret"]
problems = []
for logical_id, resource in template["Resources"].items():
    if resource["Type"] != "AWS::Serverless::Function":
        continue
    binary = resource["Metadata"]["BuildProperties"]["Binary"]
    folder = pathlib.Path("events") / binary
    if binary == "rotation-scheduler":
        names = sorted({"scheduled"} | {p.stem for p in folder.glob("*.json")})
    else:
        names = steps
    for name in names:
        path = folder / f"{name}.json"
        if not path.is_file():
            problems.append(f"{path}: missing (sam local invoke {logical_id} needs it)")
            continue
        try:
            event = json.loads(path.read_text())
        except ValueError as error:
            problems.append(f"{path}: not JSON ({error})")
            continue
        if name in steps:
            for field in ["Step", "SecretId", "ClientRequestToken"]:
                if not isinstance(event.get(field), str) or not event[field]:
                    problems.append(f"{path}: {field} must be a non-empty string")
            if event.get("Step") != name:
                problems.append(f"{path}: Step is {event.get('Step')!r}, the file name says {name!r}")
        elif not isinstance(event, dict):
            problems.append(f"{path}: must be a JSON object")
        elif not isinstance(event.get("dry_run", False), bool):
            problems.append(f"{path}: dry_run must be true or false")
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
print("events: every step of every function has a sample event")
EOF

if [ "${ROTOR_SKIP_SAM_BUILD:-}" = 1 ]; then
  echo "==> sam build skipped (ROTOR_SKIP_SAM_BUILD=1)"
  exit 0
fi

# The template's functions, in its order.
functions=$("$sam_venv/bin/python" -c '
import pathlib
from samtranslator.yaml_helper import yaml_parse
t = yaml_parse(pathlib.Path("template.yaml").read_text())
print("\n".join(k for k, r in t["Resources"].items() if r["Type"] == "AWS::Serverless::Function"))
')
for name in "$@"; do
  printf '%s\n' "$functions" | grep -qx "$name" || { echo "no function $name in template.yaml" >&2; exit 1; }
done

# sam build runs `cargo lambda build --release --arm64 --bin <binary>` (a beta
# build method, hence the opt-in); cargo-lambda and Zig come from .venv.
export PATH="$root/.venv/bin:$PATH"
export SAM_CLI_BETA_RUST_CARGO_LAMBDA=1
# The size Lambda counts: bootstrap alone in a deflated zip, as sam deploy uploads it.
report() {
  local bootstrap=".aws-sam/build/$1/bootstrap"
  [ -f "$bootstrap" ] || { echo "sam build left no $bootstrap" >&2; exit 1; }
  "$sam_venv/bin/python" - "$1" "$bootstrap" <<'EOF'
import io, os, sys, zipfile
name, path = sys.argv[1:]
buffer = io.BytesIO()
with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
    archive.write(path, "bootstrap")
mib = 2**20
print(f"{name:<28} {len(buffer.getvalue()) / mib:.1f} MiB zipped, {os.path.getsize(path) / mib:.1f} MiB unzipped")
EOF
}
if [ $# -eq 0 ]; then
  echo "==> sam build (every function, arm64)"
  "$sam_venv/bin/sam" build --template template.yaml
  for logical_id in $functions; do report "$logical_id"; done
else
  # sam build builds one named function, or all of them, per call.
  for logical_id in "$@"; do
    echo "==> sam build $logical_id (arm64)"
    "$sam_venv/bin/sam" build "$logical_id" --template template.yaml
    report "$logical_id"
  done
fi
