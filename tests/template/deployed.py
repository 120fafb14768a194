"""template.yaml as CloudFormation would deploy it, computed offline.

`deployed(parameters)` runs the SAM translator (the one `sam deploy` uses) on
template.yaml, then evaluates the result the way CloudFormation does for one
set of parameter values: conditions, `Fn::If`, `Ref`, `Fn::Sub`, `Fn::Join`,
`Fn::GetAtt`, `AWS::NoValue`. What comes back is plain data (resources whose
condition is false are gone), so tests can compare a role's statements, a
function's environment or a key policy with what the README documents.

No AWS account, credentials or network: the translator needs only a region, an
account id and a partition, which are placeholders here. A resource's own
attributes (an ARN CloudFormation assigns) resolve to the ARN AWS would give it
where the template fixes its name (functions, log groups), and otherwise to a
placeholder `<LogicalId.Attribute>`.
"""

import copy
import functools
import json
import logging
import os
import pathlib
import re

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

# The translator's metrics are never published here; keep its note about them quiet.
logging.getLogger("samtranslator.metrics").setLevel(logging.ERROR)

REGION = "us-east-1"
ACCOUNT = "123456789012"
PARTITION = "aws"
PSEUDO = {
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::Partition": PARTITION,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "rotor",
    "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/rotor/0",
}


class _NoValue:
    """AWS::NoValue: removed from the list or mapping that holds it."""


NO_VALUE = _NoValue()


class _NoManagedPolicies:
    """The translator asks IAM for managed policy ARNs only when a function uses
    SAM's `Policies`; rotor's functions have roles of their own."""

    def load(self):
        return {}


def raw_template():
    return yaml_parse(TEMPLATE.read_text())


@functools.lru_cache(maxsize=None)
def _deployed(frozen):
    parameters = dict(frozen)
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    source = raw_template()
    declared = source.get("Parameters", {})
    unknown = set(parameters) - set(declared)
    if unknown:
        raise KeyError(f"template.yaml has no parameter {sorted(unknown)}")
    values = {name: spec.get("Default") for name, spec in declared.items()}
    values.update(parameters)
    # What `sam package` does before the translator runs: the code is uploaded
    # and CodeUri names it in S3.
    packaged = copy.deepcopy(source)
    packaged.get("Globals", {}).get("Function", {})["CodeUri"] = "s3://rotor-artifacts/code.zip"
    for resource in packaged["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function" and "CodeUri" in resource.get("Properties", {}):
            resource["Properties"]["CodeUri"] = "s3://rotor-artifacts/code.zip"
    translated = transform(packaged, {**values, **PSEUDO}, _NoManagedPolicies())
    return _Resolver(translated, values).result()


def deployed(**parameters):
    """The translated, resolved template for these parameter values (the
    template's defaults for the others)."""
    return copy.deepcopy(_deployed(tuple(sorted(parameters.items()))))


class _Resolver:
    def __init__(self, template, values):
        self.template = template
        self.parameters = {}
        for name, spec in template.get("Parameters", {}).items():
            value = values.get(name, spec.get("Default"))
            if spec["Type"] == "CommaDelimitedList":
                value = [item.strip() for item in str(value).split(",")]
            elif value is not None:
                value = str(value)
            self.parameters[name] = value
        self.conditions = {}

    def result(self):
        resources = {}
        for logical_id, resource in self.template["Resources"].items():
            if "Condition" in resource and not self.condition(resource["Condition"]):
                continue
            resolved = {k: v for k, v in resource.items() if k != "Properties"}
            resolved["Properties"] = self.value(resource.get("Properties", {}))
            resources[logical_id] = resolved
        outputs = {}
        for name, output in self.template.get("Outputs", {}).items():
            if "Condition" in output and not self.condition(output["Condition"]):
                continue
            outputs[name] = self.value(output["Value"])
        return {"Resources": resources, "Outputs": outputs, "Parameters": self.parameters}

    # ------------------------------------------------------------ conditions
    def condition(self, name):
        if name not in self.conditions:
            self.conditions[name] = self.truth(self.template["Conditions"][name])
        return self.conditions[name]

    def truth(self, node):
        (function, argument), = node.items()
        if function == "Fn::Equals":
            left, right = (self.value(a) for a in argument)
            return left == right
        if function == "Fn::Not":
            return not self.truth(argument[0])
        if function == "Fn::And":
            return all(self.truth(a) for a in argument)
        if function == "Fn::Or":
            return any(self.truth(a) for a in argument)
        if function == "Condition":
            return self.condition(argument)
        raise ValueError(f"unsupported condition function {function}")

    # ------------------------------------------------------------ values
    def value(self, node):
        if isinstance(node, list):
            items = [self.value(item) for item in node]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, argument), = node.items()
            if key == "Ref":
                return self.ref(argument)
            if key == "Fn::If":
                name, yes, no = argument
                return self.value(yes if self.condition(name) else no)
            if key == "Fn::Sub":
                return self.sub(argument)
            if key == "Fn::Join":
                delimiter, items = argument
                return delimiter.join(self.value(items))
            if key == "Fn::GetAtt":
                logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return self.get_att(logical_id, attribute)
            if key == "Fn::Select":
                index, items = argument
                return self.value(items)[int(self.value(index))]
            if key == "Fn::Split":
                delimiter, text = argument
                return self.value(text).split(delimiter)
            if key.startswith("Fn::") or key == "Condition":
                raise ValueError(f"unsupported intrinsic function {key}")
        resolved = {k: self.value(v) for k, v in node.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def ref(self, name):
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.parameters:
            return self.parameters[name]
        resource = self.template["Resources"][name]
        if resource["Type"] == "AWS::Lambda::Function":
            return self.value(resource["Properties"]["FunctionName"])
        if resource["Type"] == "AWS::Logs::LogGroup":
            return self.value(resource["Properties"]["LogGroupName"])
        if resource["Type"] == "AWS::SNS::Topic":
            return f"arn:{PARTITION}:sns:{REGION}:{ACCOUNT}:<{name}>"
        return f"<{name}>"

    def get_att(self, logical_id, attribute):
        resource = self.template["Resources"][logical_id]
        if attribute == "Arn" and resource["Type"] == "AWS::Lambda::Function":
            return f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{self.ref(logical_id)}"
        if attribute == "Arn" and resource["Type"] == "AWS::Logs::LogGroup":
            return f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:{self.ref(logical_id)}:*"
        if attribute == "Arn":
            service = resource["Type"].split("::")[1].lower()
            return f"arn:{PARTITION}:{service}:{REGION}:{ACCOUNT}:<{logical_id}>"
        return f"<{logical_id}.{attribute}>"

    def sub(self, argument):
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        variables = {k: self.value(v) for k, v in variables.items()}

        def replace(match):
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and name.split(".", 1)[0] in self.template["Resources"]:
                return str(self.get_att(*name.split(".", 1)))
            value = self.ref(name)
            if isinstance(value, list) or value is NO_VALUE:
                raise ValueError(f"Fn::Sub cannot insert {name}")
            return str(value)

        return re.sub(r"\$\{([^}]+)\}", replace, text)


def resources_of_type(template, kind):
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def statements(role):
    """Every inline statement of a role, each with its policy's name."""
    found = []
    for policy in role["Properties"].get("Policies", []):
        body = policy["PolicyDocument"]["Statement"]
        for statement in body if isinstance(body, list) else [body]:
            found.append(statement)
    return found


if __name__ == "__main__":
    import sys

    pairs = dict(arg.split("=", 1) for arg in sys.argv[1:])
    print(json.dumps(deployed(**pairs), indent=2, default=str))
