"""Lints the IAM policies dump_policies.py wrote with parliament, and fails on
any finding that is not one of the few accepted below, each with its reason.

    .venv-iac/parliament/bin/python tests/template/lint_policies.py DIR

Run by scripts/check-template.sh, in parliament's own venv (its pins differ
from the SAM CLI's).
"""

import pathlib
import sys

import parliament
from parliament import analyze_policy_string, enhance_finding, override_config
from parliament.cli import is_finding_filtered

# Actions that take no narrower resource than "*", as AWS documents them.
RESOURCE_STAR_ACCEPTED = {
    # Lambda's own statement for functions in a VPC (what the managed
    # AWSLambdaVPCAccessExecutionRole grants, less its logs actions).
    "ec2:AssignPrivateIpAddresses",
    "ec2:CreateNetworkInterface",
    "ec2:DeleteNetworkInterface",
    "ec2:UnassignPrivateIpAddresses",
    # rds-rotation looks up the instance or cluster of a managed-master secret.
    "rds:DescribeDBClusters",
    "rds:DescribeDBInstances",
}


def accepted(path, finding):
    """Whether a finding is one of the accepted ones (the tests pin these
    statements exactly, so nothing else can hide behind them)."""
    key_policy = ".key-policy." in path.name
    if finding.issue == "RESOURCE_STAR":
        # In a key policy, "*" is the key itself.
        actions = set(finding.detail if isinstance(finding.detail, list) else [finding.detail])
        return key_policy or actions <= RESOURCE_STAR_ACCEPTED
    if ".IamRotationRole." in path.name and finding.issue in (
        "CREDENTIALS_EXPOSURE", "PERMISSIONS_MANAGEMENT_ACTIONS", "PRIVILEGE_ESCALATION"):
        # iam-rotation's purpose: iam:CreateAccessKey (and the other key
        # actions) on exactly the users of iamUserArns, never on "*"
        # (test_deployed.py pins the statement; the function refuses users
        # outside IAM_USER_ARNS, of another account, or another team's).
        return True
    if finding.issue == "PERMISSIONS_MANAGEMENT_ACTIONS":
        # The key policy's first statement is AWS's default one: the account
        # root may do kms:*, which hands the key's administration to IAM.
        return key_policy
    return False


def main(directory):
    # The community auditors too (privilege escalation, credential exposure,
    # permissions management), as `parliament --include-community-auditors`.
    override_config(pathlib.Path(parliament.__file__).parent / "community_auditors" / "config_override.yaml")
    files = sorted(directory.rglob("*.json"))
    if not files:
        print(f"no policies in {directory}", file=sys.stderr)
        return 1
    shown, accepted_count = [], 0
    for path in files:
        policy = analyze_policy_string(path.read_text(), filepath=str(path), include_community_auditors=True)
        for finding in map(enhance_finding, policy.findings):
            if is_finding_filtered(finding, "LOW"):
                continue
            if accepted(path, finding):
                accepted_count += 1
                continue
            shown.append(f"{path.name}: {finding.severity} {finding.issue} {finding.title}: {finding.detail}")
    for line in shown:
        print(line)
    print(f"parliament: {len(files)} policies, {len(shown)} findings ({accepted_count} accepted:"
          " Resource \"*\" where the actions take no other, the key policy's default statement,"
          " iam-rotation's key actions on the listed users)")
    return 1 if shown else 0


if __name__ == "__main__":
    sys.exit(main(pathlib.Path(sys.argv[1])))
