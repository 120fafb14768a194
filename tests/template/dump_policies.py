"""Writes every IAM policy the template deploys, resolved for each parameter
set of the tests, as JSON files for an IAM policy linter (parliament, in
scripts/check-template.sh):

    .venv-iac/sam/bin/python tests/template/dump_policies.py OUT_DIR

Identity policies (the roles' inline policies) go to OUT_DIR/identity/, resource
policies (the alarm key's and topic's policies) to OUT_DIR/resource/, each named
<parameter set>.<resource>.<policy>.json. The roles' trust policies are left
out: they have no Resource, which a policy linter reads as malformed; the tests
compare them with the documented statement instead.
"""

import json
import pathlib
import re
import sys

from deployed import deployed, resources_of_type
from test_deployed import PARAMETER_SETS


def write(directory, name, document):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / (re.sub(r"[^A-Za-z0-9.-]+", "-", name) + ".json")).write_text(json.dumps(document, indent=2))


def main(out):
    count = 0
    for set_name, parameters in PARAMETER_SETS.items():
        template = deployed(**parameters)
        for logical_id, role in resources_of_type(template, "AWS::IAM::Role").items():
            for policy in role["Properties"].get("Policies", []):
                write(out / "identity", f"{set_name}.{logical_id}.{policy['PolicyName']}", policy["PolicyDocument"])
                count += 1
        for logical_id, key in resources_of_type(template, "AWS::KMS::Key").items():
            write(out / "resource", f"{set_name}.{logical_id}.key-policy", key["Properties"]["KeyPolicy"])
            count += 1
        for logical_id, policy in resources_of_type(template, "AWS::SNS::TopicPolicy").items():
            write(out / "resource", f"{set_name}.{logical_id}", policy["Properties"]["PolicyDocument"])
            count += 1
    print(f"{count} policies from {len(PARAMETER_SETS)} parameter sets in {out}")


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]))
