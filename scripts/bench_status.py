"""Measures `rotor status` over a fleet of secrets in moto: wall time and API
calls per secret, as a Markdown table for the README's Benchmarks.

    .venv/bin/python scripts/bench_status.py [SECRETS] [ROTOR_BINARY]

Starts moto (scripts/moto_server.py), creates SECRETS (default 1,000) secrets
with rotation configured across three rotation functions (one of them without
Secrets Manager's invoke permission, one deleted), leaves one secret in twenty
with a rotation in flight, then runs `rotor status --stats` three times and
reports each run. A benchmark, not a test: it asserts no timings.
"""

import io
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import boto3

root = Path(__file__).resolve().parent.parent
secrets = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
binary = sys.argv[2] if len(sys.argv) > 2 else str(root / "target/debug/rotor")

moto = subprocess.Popen(
    [sys.executable, str(root / "scripts/moto_server.py")],
    stdin=subprocess.PIPE,
    stdout=subprocess.PIPE,
    stderr=subprocess.DEVNULL,
    text=True,
)
port = int(moto.stdout.readline().strip())
endpoint = f"http://127.0.0.1:{port}"
session = dict(
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id="rotor-local",
    aws_secret_access_key="rotor-local",
)
sm = boto3.client("secretsmanager", **session)
lam = boto3.client("lambda", **session)
iam = boto3.client("iam", **session)

role = iam.create_role(RoleName="bench", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
functions = ["bench-generic", "bench-rds", "bench-gone"]
account = "123456789012"
arns = [f"arn:aws:lambda:us-east-1:{account}:function:{f}" for f in functions]

started = time.time()
for i in range(secrets):
    arn = sm.create_secret(Name=f"bench/{i:05d}", SecretString="v")["ARN"]
    token = f"00000000-0000-4000-8000-{i:012d}"
    # The function does not exist yet: moto stages AWSPENDING and stops.
    try:
        sm.rotate_secret(
            SecretId=arn,
            ClientRequestToken=token,
            RotationLambdaARN=arns[i % 3],
            RotationRules={"AutomaticallyAfterDays": 30},
        )
    except sm.exceptions.ResourceNotFoundException:
        pass
    if i % 20 != 0:
        sm.update_secret_version_stage(
            SecretId=arn, VersionStage="AWSPENDING", RemoveFromVersionId=token
        )
print(f"created {secrets} secrets in {time.time() - started:.1f} s", file=sys.stderr)

code = io.BytesIO()
with zipfile.ZipFile(code, "w") as z:
    z.writestr("bootstrap", "")
for name, kind, invocable in [("bench-generic", "generic-rotation", True), ("bench-rds", "rds-rotation", False)]:
    lam.create_function(
        FunctionName=name,
        Runtime="provided.al2023",
        Role=role,
        Handler="bootstrap",
        Code={"ZipFile": code.getvalue()},
        Description=f"rotor {kind}: bench",
        Timeout=60,
    )
    if invocable:
        lam.add_permission(
            FunctionName=name,
            StatementId="SecretsManagerInvoke",
            Action="lambda:InvokeFunction",
            Principal="secretsmanager.amazonaws.com",
        )

print("| run | secrets | wall time | API calls | calls per secret | calls by operation |")
print("|---|---:|---:|---:|---:|---|")
for run in range(1, 4):
    out = subprocess.run(
        [binary, "status", "--endpoint", endpoint, "--json", "--stats", "--stuck-after-minutes", "0"],
        capture_output=True,
        text=True,
    )
    line = out.stderr.strip().splitlines()[-1]
    m = re.match(r"rotor status: (\d+) secrets in ([\d.]+) s, (\d+) calls \(([\d.]+) a secret\): (.*)", line)
    if not m:
        sys.exit(f"unexpected output: {out.stderr}")
    n, wall, calls, per, ops = m.groups()
    print(f"| {run} | {int(n):,} | {float(wall):.2f} s | {int(calls):,} | {per} | {ops} |")
moto.stdin.close()
moto.wait()
