"""What template.yaml deploys, for the parameter sets that change it.

Each test translates the SAM template as `sam deploy` would (deployed.py, no
AWS account) and compares the result with what the README documents: which
function gets which environment variable, each role's statements (actions,
resources and conditions, exactly), the alarm topic's key and topic policies,
the VPC endpoint, the scheduler's retries, what survives a stack deletion.

Run by scripts/check-template.sh:
    .venv-iac/sam/bin/python -m unittest discover -s tests/template -t .
"""

import pathlib
import re
import tomllib
import unittest

from deployed import ACCOUNT, REGION, ROOT, deployed, raw_template, resources_of_type, statements
from iam import allows

SECRETS = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:*"
VIA_SECRETS_MANAGER = {"StringEquals": {"kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com"}}

FUNCTIONS = {
    "GenericRotationFunction": "generic-rotation",
    "RdsRotationFunction": "rds-rotation",
    "OauthRotationFunction": "oauth-rotation",
    "RedisRotationFunction": "redis-rotation",
    "LdapRotationFunction": "ldap-rotation",
    "IamRotationFunction": "iam-rotation",
    "RotationSchedulerFunction": "rotation-scheduler",
}
ROTATION_FUNCTIONS = ["GenericRotationFunction", "RdsRotationFunction", "OauthRotationFunction", "RedisRotationFunction",
                      "LdapRotationFunction", "IamRotationFunction"]
# Placed in the VPC whenever subnets are given: they must reach their servers.
VPC_FUNCTIONS = ["RdsRotationFunction", "RedisRotationFunction", "LdapRotationFunction"]
PASSWORD_FUNCTIONS = ["GenericRotationFunction", "RdsRotationFunction", "RedisRotationFunction", "LdapRotationFunction"]
ROLES = {f: f.replace("Function", "Role") for f in FUNCTIONS}
ENI_ACTIONS = [
    "ec2:AssignPrivateIpAddresses",
    "ec2:CreateNetworkInterface",
    "ec2:DeleteNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:UnassignPrivateIpAddresses",
]

VPC = {"vpcSubnetIds": "subnet-1,subnet-2", "vpcSecurityGroupIds": "sg-1,sg-2"}
VPC_ALL = {**VPC, "vpcForAllFunctions": "true"}
ENDPOINT = {"endpoint": "https://vpce-0abc-secretsmanager.example"}
KMS = {
    "kmsKeyArn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/one,arn:aws:kms:{REGION}:{ACCOUNT}:key/two",
    "masterSecretKmsKeyArn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/master",
}
READ_SECRETS = {
    "masterSecretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:admin-AbCdEf",
    "additionalMasterSecretArns": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:admins/*",
    "managementSecretArns": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:idp-admin-AbCdEf",
    "webhookKeySecretArns": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:hook-key-AbCdEf",
    "redisMasterSecretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:cache-admin-AbCdEf",
    "redisAdditionalMasterSecretArns": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:cache-admins/*",
    "ldapMasterSecretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ad-admin-AbCdEf",
    "ldapAdditionalMasterSecretArns": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ad-admins/*",
}
MANAGED_DIRECTORIES = {
    "ldapManagedDirectoryArns": f"arn:aws:ds:{REGION}:{ACCOUNT}:directory/d-1234567890,"
                                f"arn:aws:ds:{REGION}:{ACCOUNT}:directory/d-abcdef0123",
}
MANAGED_USERS = {
    "redisManagedUserArns": f"arn:aws:elasticache:{REGION}:{ACCOUNT}:user:orders-*,"
                            f"arn:aws:memorydb:{REGION}:{ACCOUNT}:user/billing",
}
# After-rotation actions: the targets the deployer allows (README,
# "After-rotation actions").
AFTER = {
    "afterEcsServices": f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/prod/web,arn:aws:ecs:{REGION}:{ACCOUNT}:service/prod/api",
    "afterSnsTopics": f"arn:aws:sns:{REGION}:{ACCOUNT}:rotated",
    "afterTopicKmsKeyArns": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/topic",
    "afterWebhookPrefixes": "https://hooks.example/rotated",
    "afterWebhookKeySecret": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:after-key-AbCdEf",
}
AFTER_PARAMETERS = ["afterEcsServices", "afterSnsTopics", "afterWebhookPrefixes"]
VIA_SNS = {"StringEquals": {"kms:ViaService": f"sns.{REGION}.amazonaws.com"}}
NOTICE_TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:<NoticeTopic>"
IAM_USERS = {
    "iamUserArns": f"arn:aws:iam::{ACCOUNT}:user/ci/*,arn:aws:iam::{ACCOUNT}:user/smtp-sender",
}
# iam-rotation's actions, on exactly the listed users (issue 23).
IAM_KEY_ACTIONS = ["iam:CreateAccessKey", "iam:DeleteAccessKey", "iam:GetAccessKeyLastUsed", "iam:GetUser",
                   "iam:ListAccessKeys", "iam:UpdateAccessKey"]
OTHER_ROTATION_FUNCTION = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:legacy-rotation"
SCHEDULER_ARN = {"schedulerRotationLambdaArn": OTHER_ROTATION_FUNCTION}
ALLOWED_SECRETS = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:app/orders-AbCdEf,arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:db/billing-GhIjKl"

# Every parameter that becomes an environment variable, a value for it, and
# the functions that get it (README, "Deploy").
ENV_PARAMETERS = {
    "endpoint": ("SECRETS_MANAGER_ENDPOINT", "https://vpce-0abc-secretsmanager.example", None),
    "excludeCharacters": ("EXCLUDE_CHARACTERS", "/@\"'\\", PASSWORD_FUNCTIONS),
    "passwordLength": ("PASSWORD_LENGTH", "40", PASSWORD_FUNCTIONS),
    "excludeNumbers": ("EXCLUDE_NUMBERS", "true", PASSWORD_FUNCTIONS),
    "excludePunctuation": ("EXCLUDE_PUNCTUATION", "true", PASSWORD_FUNCTIONS),
    "excludeUppercase": ("EXCLUDE_UPPERCASE", "false", PASSWORD_FUNCTIONS),
    "excludeLowercase": ("EXCLUDE_LOWERCASE", "false", PASSWORD_FUNCTIONS),
    "includeSpace": ("INCLUDE_SPACE", "false", PASSWORD_FUNCTIONS),
    "requireEachIncludedType": ("REQUIRE_EACH_INCLUDED_TYPE", "true", PASSWORD_FUNCTIONS),
    "genericFields": ("ROTOR_FIELDS", "password api_key", ["GenericRotationFunction"]),
    "genericGenerate": ("ROTOR_GENERATE", "hex bytes=32", ["GenericRotationFunction"]),
    "genericMode": ("ROTOR_MODE", "multi", ["GenericRotationFunction"]),
    "webhookUrl": ("ROTOR_WEBHOOK_URL", "https://hooks.example/rotate", ["GenericRotationFunction"]),
    "webhookKeySecret": ("ROTOR_WEBHOOK_KEY_SECRET", "hook-key", ["GenericRotationFunction"]),
    "validationWindow": ("ROTOR_VALIDATION_WINDOW", "7d", ["GenericRotationFunction"]),
    "webhookAllowedPrefixes": ("ROTOR_WEBHOOK_ALLOWED_PREFIXES", "https://hooks.example/", ["GenericRotationFunction"]),
    "genericKeyIdField": ("ROTOR_KEY_ID_FIELD", "access_key_id", ["GenericRotationFunction"]),
    "genericRevokePrevious": ("REVOKE_PREVIOUS", "next-rotation", ["GenericRotationFunction"]),
    "issuerSendsCurrent": ("ROTOR_ISSUER_SENDS_CURRENT", "true", ["GenericRotationFunction"]),
    "rotationStrategy": ("ROTATION_STRATEGY", "alternating", ["RdsRotationFunction"]),
    "masterSecretArn": ("MASTER_SECRET_ARN", READ_SECRETS["masterSecretArn"], ["RdsRotationFunction"]),
    "usernameCharacterLimit": ("USERNAME_CHARACTER_LIMIT", "32", ["RdsRotationFunction"]),
    "sslCertFile": ("SSL_CERT_FILE", "/opt/rds-global-bundle.pem", VPC_FUNCTIONS),
    "revokePrevious": ("REVOKE_PREVIOUS", "next-rotation", ["OauthRotationFunction"]),
    "managementSecretsForEveryClient": ("MANAGEMENT_SECRET_ARNS", READ_SECRETS["managementSecretArns"], ["OauthRotationFunction"]),
    "redisMasterSecretArn": ("MASTER_SECRET_ARN", READ_SECRETS["redisMasterSecretArn"], ["RedisRotationFunction"]),
    "redisRevokePrevious": ("REVOKE_PREVIOUS", "at-finish", ["RedisRotationFunction"]),
    "redisManagedUserArns": ("MANAGED_USER_ARNS", MANAGED_USERS["redisManagedUserArns"], ["RedisRotationFunction"]),
    "redisManagedUsersTrustAllWriters": ("MANAGED_USERS_TRUST_ALL_WRITERS", "true", ["RedisRotationFunction"]),
    "ldapMasterSecretArn": ("MASTER_SECRET_ARN", READ_SECRETS["ldapMasterSecretArn"], ["LdapRotationFunction"]),
    "ldapDictKeyDirectory": ("DICT_KEY_DIRECTORY", "DirectoryId", ["LdapRotationFunction"]),
    "ldapDictKeyUsername": ("DICT_KEY_USERNAME", "Username", ["LdapRotationFunction"]),
    "ldapDictKeyPassword": ("DICT_KEY_PASSWORD", "Password", ["LdapRotationFunction"]),
    "iamUserArns": ("IAM_USER_ARNS", IAM_USERS["iamUserArns"], ["IamRotationFunction"]),
    "iamUsersTrustAllWriters": ("IAM_USERS_TRUST_ALL_WRITERS", "true", ["IamRotationFunction"]),
    "iamRevokePrevious": ("REVOKE_PREVIOUS", "at-finish", ["IamRotationFunction"]),
    "iamRevokePreviousAction": ("REVOKE_PREVIOUS_ACTION", "delete", ["IamRotationFunction"]),
    "tagFilter": ("TAG_FILTER", "rotor:fleet=payments", ["RotationSchedulerFunction"]),
    "policyTag": ("POLICY_TAG", "policy", ["RotationSchedulerFunction"]),
    "windowTag": ("WINDOW_TAG", "team:window", ["RotationSchedulerFunction"]),
    "defaultPolicy": ("DEFAULT_POLICY", "90d", ["RotationSchedulerFunction"]),
    "maxRotationsPerSecretPerHour": ("MAX_ROTATIONS_PER_SECRET_PER_HOUR", "3", ["RotationSchedulerFunction"]),
    "maxConcurrency": ("MAX_CONCURRENCY", "8", ["RotationSchedulerFunction"]),
    "ratePerSecond": ("RATE_PER_SECOND", "0.5", ["RotationSchedulerFunction"]),
    "schedulerRotationLambdaArn": ("ROTATION_LAMBDA_ARN", OTHER_ROTATION_FUNCTION, ["RotationSchedulerFunction"]),
    "schedulerAllowedSecrets": ("ROTATION_ALLOWED_SECRETS", ALLOWED_SECRETS, ["RotationSchedulerFunction"]),
    "metricsSecretDimension": ("ROTOR_METRICS_SECRET_DIMENSION", "true", ROTATION_FUNCTIONS),
    "afterEcsServices": ("ROTOR_AFTER_ECS_SERVICES", AFTER["afterEcsServices"], ROTATION_FUNCTIONS),
    "afterSnsTopics": ("ROTOR_AFTER_SNS_TOPICS", AFTER["afterSnsTopics"], ROTATION_FUNCTIONS),
    "afterWebhookPrefixes": ("ROTOR_AFTER_WEBHOOK_PREFIXES", AFTER["afterWebhookPrefixes"], ROTATION_FUNCTIONS),
    "afterWebhookKeySecret": ("ROTOR_AFTER_WEBHOOK_KEY_SECRET", AFTER["afterWebhookKeySecret"], ROTATION_FUNCTIONS),
}

# The notice topic on, for the secrets under a prefix, with a subscriber.
NOTICES = {"rotationNotices": "true", "noticeSecretPrefix": "team-a/", "noticeSubscriberEndpoint": "ops@example.com"}


# Variables the functions read that the template never sets: the test bed's
# (tests and the demo only), and the custom pending label, which works only for
# rotations an orchestrator stages under it (README, "Environment variables").
NEVER_DEPLOYED = ["ROTOR_ALLOW_LOOPBACK_URLS", "ROTOR_PENDING_LABEL"]


def function_arn(logical_id):
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:rotor-{FUNCTIONS[logical_id]}"


def log_group_arn(logical_id):
    return f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/rotor-{FUNCTIONS[logical_id]}:*"


def as_list(value):
    return value if isinstance(value, list) else [value]


def normalized(statement):
    """A statement with Action and Resource as sorted lists, so that the order
    in which the template writes them does not matter."""
    result = dict(statement)
    for key in ("Action", "Resource"):
        if key in result:
            result[key] = sorted(as_list(result[key]))
    return result


def in_vpc(parameters):
    """The functions the template places in the VPC for these parameters."""
    if not parameters.get("vpcSubnetIds"):
        return []
    if parameters.get("vpcForAllFunctions") == "true":
        return list(FUNCTIONS)
    return list(VPC_FUNCTIONS)


def env(template, logical_id):
    return template["Resources"][logical_id]["Properties"].get("Environment", {}).get("Variables", {})


def scheduler_function_arns(parameters):
    arns = [function_arn(f) for f in ROTATION_FUNCTIONS]
    if parameters.get("schedulerRotationLambdaArn"):
        arns.append(parameters["schedulerRotationLambdaArn"])
    return arns


def expected_statements(logical_id, parameters):
    """Every statement the README documents for this function's role."""
    p = parameters
    found = [{
        "Sid": "OwnLogGroup",
        "Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": log_group_arn(logical_id),
    }]
    if logical_id in ROTATION_FUNCTIONS:
        # iam-rotation also reads when the rotation's version was staged, to
        # tell its own orphan key from anyone else's.
        staging = ["secretsmanager:ListSecretVersionIds"] if logical_id == "IamRotationFunction" else []
        found.append({
            "Sid": "SecretsRotatedByThisFunction",
            "Effect": "Allow",
            "Action": [
                "secretsmanager:DescribeSecret",
                "secretsmanager:GetSecretValue",
                "secretsmanager:PutSecretValue",
                "secretsmanager:UpdateSecretVersionStage",
            ] + staging,
            "Resource": SECRETS,
            "Condition": {"ArnEquals": {"secretsmanager:resource/AllowRotationLambdaArn": function_arn(logical_id)}},
        })
    read = ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"]
    if logical_id == "GenericRotationFunction" and p.get("webhookKeySecretArns"):
        found.append({"Sid": "WebhookKeySecrets", "Effect": "Allow", "Action": read,
                      "Resource": p["webhookKeySecretArns"].split(",")})
    if logical_id == "RdsRotationFunction":
        if p.get("masterSecretArn"):
            found.append({"Sid": "MasterSecret", "Effect": "Allow", "Action": read, "Resource": p["masterSecretArn"]})
        if p.get("additionalMasterSecretArns"):
            found.append({"Sid": "AdditionalMasterSecrets", "Effect": "Allow", "Action": read,
                          "Resource": p["additionalMasterSecretArns"].split(",")})
    if logical_id == "OauthRotationFunction" and p.get("managementSecretArns"):
        found.append({"Sid": "ManagementSecrets", "Effect": "Allow", "Action": read,
                      "Resource": p["managementSecretArns"].split(",")})
    if logical_id == "RedisRotationFunction":
        if p.get("redisMasterSecretArn"):
            found.append({"Sid": "MasterSecret", "Effect": "Allow", "Action": read,
                          "Resource": p["redisMasterSecretArn"]})
        if p.get("redisAdditionalMasterSecretArns"):
            found.append({"Sid": "AdditionalMasterSecrets", "Effect": "Allow", "Action": read,
                          "Resource": p["redisAdditionalMasterSecretArns"].split(",")})
        if p.get("redisManagedUserArns"):
            found.append({"Sid": "ManagedCacheUsers", "Effect": "Allow",
                          "Action": ["elasticache:DescribeUsers", "elasticache:ListTagsForResource",
                                     "elasticache:ModifyUser", "memorydb:DescribeUsers",
                                     "memorydb:ListTags", "memorydb:UpdateUser"],
                          "Resource": p["redisManagedUserArns"].split(",")})
    if logical_id == "LdapRotationFunction":
        if p.get("ldapMasterSecretArn"):
            found.append({"Sid": "MasterSecret", "Effect": "Allow", "Action": read,
                          "Resource": p["ldapMasterSecretArn"]})
        if p.get("ldapAdditionalMasterSecretArns"):
            found.append({"Sid": "AdditionalMasterSecrets", "Effect": "Allow", "Action": read,
                          "Resource": p["ldapAdditionalMasterSecretArns"].split(",")})
        if p.get("ldapManagedDirectoryArns"):
            found.append({"Sid": "ManagedDirectoryResets", "Effect": "Allow", "Action": "ds:ResetUserPassword",
                          "Resource": p["ldapManagedDirectoryArns"].split(",")})
            found.append({"Sid": "DescribeDirectoriesHasNoResourceScope", "Effect": "Allow",
                          "Action": "ds:DescribeDirectories", "Resource": "*"})
    if logical_id == "IamRotationFunction" and p.get("iamUserArns"):
        found.append({"Sid": "AccessKeysOfListedUsers", "Effect": "Allow", "Action": IAM_KEY_ACTIONS,
                      "Resource": p["iamUserArns"].split(",")})
    if logical_id in ROTATION_FUNCTIONS and p.get("kmsKeyArn"):
        found.append({"Sid": "SecretKeysThroughSecretsManager", "Effect": "Allow",
                      "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                      "Resource": p["kmsKeyArn"].split(","), "Condition": VIA_SECRETS_MANAGER})
    if logical_id == "RdsRotationFunction":
        if p.get("masterSecretKmsKeyArn"):
            found.append({"Sid": "MasterSecretKeyThroughSecretsManager", "Effect": "Allow",
                          "Action": "kms:Decrypt", "Resource": p["masterSecretKmsKeyArn"],
                          "Condition": VIA_SECRETS_MANAGER})
        if p.get("rdsDescribeDatabases", "true") == "true":
            found.append({"Sid": "DescribeDatabasesHasNoResourceScope", "Effect": "Allow",
                          "Action": ["rds:DescribeDBClusters", "rds:DescribeDBInstances"], "Resource": "*"})
    if logical_id == "RotationSchedulerFunction":
        arns = scheduler_function_arns(p)
        found += [
            {"Sid": "ListSecretsHasNoResourceLevelPermissions", "Effect": "Allow",
             "Action": "secretsmanager:ListSecrets", "Resource": "*"},
            {"Sid": "SecretMetadata", "Effect": "Allow",
             "Action": ["secretsmanager:DescribeSecret", "secretsmanager:ListSecretVersionIds"],
             "Resource": SECRETS},
            {"Sid": "RotateOnlyThroughTheseFunctions", "Effect": "Allow",
             "Action": "secretsmanager:RotateSecret", "Resource": SECRETS,
             "Condition": {
                 "ArnEquals": {"secretsmanager:resource/AllowRotationLambdaArn": arns},
                 "Null": {"secretsmanager:RotationLambdaARN": "true"},
                 "BoolIfExists": {"secretsmanager:ModifyRotationRules": "false"},
             }},
        ]
        if p.get("schedulerRotationLambdaArn") and p.get("schedulerAllowedSecrets"):
            found.append({"Sid": "ConfigureAllowListedSecretsOnly", "Effect": "Allow",
                          "Action": "secretsmanager:RotateSecret",
                          "Resource": p["schedulerAllowedSecrets"].split(","),
                          "Condition": {
                              "ArnEquals": {"secretsmanager:RotationLambdaARN": p["schedulerRotationLambdaArn"]},
                              "ArnEqualsIfExists": {
                                  "secretsmanager:resource/AllowRotationLambdaArn": p["schedulerRotationLambdaArn"]},
                              "BoolIfExists": {"secretsmanager:ModifyRotationRules": "false"},
                          }})
        found.append({"Sid": "InvokeTheseRotationFunctions", "Effect": "Allow",
                      "Action": "lambda:InvokeFunction", "Resource": arns})
    if logical_id in ROTATION_FUNCTIONS:
        found += expected_after_statements(logical_id, p)
    if logical_id in in_vpc(p):
        found.append({"Sid": "NetworkInterfacesHaveNoResourceScope", "Effect": "Allow",
                      "Action": ENI_ACTIONS, "Resource": "*"})
    return found


def has_after_actions(p):
    return any(p.get(name) for name in AFTER_PARAMETERS)


def expected_after_statements(logical_id, p):
    """A rotation function's after-rotation actions: exactly the listed
    targets, and only the result tag on the secrets it rotates."""
    found = []
    if p.get("afterEcsServices"):
        found.append({"Sid": "AfterActionsEcsServices", "Effect": "Allow", "Action": "ecs:UpdateService",
                      "Resource": p["afterEcsServices"].split(",")})
    if p.get("afterSnsTopics"):
        found.append({"Sid": "AfterActionsSnsTopics", "Effect": "Allow", "Action": "sns:Publish",
                      "Resource": p["afterSnsTopics"].split(",")})
    if p.get("afterTopicKmsKeyArns"):
        found.append({"Sid": "AfterActionsTopicKeysThroughSns", "Effect": "Allow",
                      "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                      "Resource": p["afterTopicKmsKeyArns"].split(","), "Condition": VIA_SNS})
    if p.get("afterWebhookKeySecret"):
        found.append({"Sid": "AfterActionsWebhookKeySecret", "Effect": "Allow",
                      "Action": "secretsmanager:GetSecretValue", "Resource": p["afterWebhookKeySecret"]})
    if has_after_actions(p) and p.get("rotationNotices") == "true":
        key = p.get("alarmTopicKmsKeyArn") or f"arn:aws:kms:{REGION}:{ACCOUNT}:key/<AlarmTopicKey>"
        found.append({"Sid": "AfterActionsNoticeTopic", "Effect": "Allow", "Action": "sns:Publish",
                      "Resource": NOTICE_TOPIC})
        found.append({"Sid": "AfterActionsNoticeTopicKeyThroughSns", "Effect": "Allow",
                      "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": key, "Condition": VIA_SNS})
    if has_after_actions(p):
        found.append({"Sid": "AfterActionsResultTag", "Effect": "Allow", "Action": "secretsmanager:TagResource",
                      "Resource": SECRETS,
                      "Condition": {
                          "ArnEquals": {"secretsmanager:resource/AllowRotationLambdaArn": function_arn(logical_id)},
                          "ForAllValues:StringEquals": {"aws:TagKeys": ["rotor:after-result"]},
                      }})
    return found


PARAMETER_SETS = {
    "defaults": {},
    "endpoint without VPC": ENDPOINT,
    "VPC": {**VPC, **ENDPOINT},
    "VPC for all": {**VPC_ALL, **ENDPOINT},
    "KMS keys and read secrets": {**KMS, **READ_SECRETS},
    "managed cache users": MANAGED_USERS,
    "managed directories": MANAGED_DIRECTORIES,
    "IAM users": IAM_USERS,
    "scheduler rotation function": SCHEDULER_ARN,
    "no RDS API": {"rdsDescribeDatabases": "false"},
    "notices": NOTICES,
    "after-rotation actions": AFTER,
    "after-rotation ECS only": {"afterEcsServices": AFTER["afterEcsServices"]},
    "after-rotation actions with notices": {**AFTER, **NOTICES},
    "everything": {**VPC_ALL, **KMS, **READ_SECRETS, **MANAGED_USERS, **MANAGED_DIRECTORIES, **IAM_USERS, **{k: v[1] for k, v in ENV_PARAMETERS.items()},
                   **NOTICES, **AFTER, "fleetScheduleState": "ENABLED"},
}


class Roles(unittest.TestCase):
    def test_each_role_has_exactly_the_documented_statements(self):
        for name, parameters in PARAMETER_SETS.items():
            template = deployed(**parameters)
            for logical_id, role in ROLES.items():
                with self.subTest(parameters=name, role=role):
                    got = [normalized(s) for s in statements(template["Resources"][role])]
                    want = [normalized(s) for s in expected_statements(logical_id, parameters)]
                    self.assertEqual(sorted(got, key=repr), sorted(want, key=repr))

    def test_no_managed_policy_widens_a_role(self):
        # AWSLambdaVPCAccessExecutionRole also grants logs writes on "*".
        for name, parameters in PARAMETER_SETS.items():
            template = deployed(**parameters)
            for logical_id, role in resources_of_type(template, "AWS::IAM::Role").items():
                with self.subTest(parameters=name, role=logical_id):
                    self.assertEqual(role["Properties"].get("ManagedPolicyArns", []), [])

    def test_logs_only_to_the_own_log_group(self):
        for name, parameters in PARAMETER_SETS.items():
            template = deployed(**parameters)
            for logical_id, role in ROLES.items():
                for statement in statements(template["Resources"][role]):
                    if any(a.startswith("logs:") for a in as_list(statement["Action"])):
                        with self.subTest(parameters=name, role=role, sid=statement.get("Sid")):
                            self.assertEqual(as_list(statement["Resource"]), [log_group_arn(logical_id)])

    def test_lambda_trust_is_limited_to_this_account(self):
        template = deployed()
        for role in ROLES.values():
            trust = template["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
            self.assertEqual(trust, [{
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
            }])


class Environment(unittest.TestCase):
    def expected_env(self, logical_id, parameters):
        want = {}
        for parameter, (variable, _, functions) in ENV_PARAMETERS.items():
            if not parameters.get(parameter):
                continue
            if parameter == "endpoint":
                functions = in_vpc(parameters)
            if logical_id in functions:
                want[variable] = parameters[parameter]
        if logical_id == "RdsRotationFunction":
            want.setdefault("ROTATION_STRATEGY", "single")
        if logical_id in ROTATION_FUNCTIONS and has_after_actions(parameters) \
                and parameters.get("rotationNotices") == "true":
            want["ROTOR_AFTER_NOTICE_TOPIC"] = NOTICE_TOPIC
        if logical_id == "RotationSchedulerFunction":
            want["ROTATION_FUNCTION_ARNS"] = ",".join(scheduler_function_arns(parameters))
        return want

    def test_each_function_gets_exactly_its_variables(self):
        for name, parameters in PARAMETER_SETS.items():
            template = deployed(**parameters)
            for logical_id in FUNCTIONS:
                with self.subTest(parameters=name, function=logical_id):
                    self.assertEqual(env(template, logical_id), self.expected_env(logical_id, parameters))

    def test_endpoint_only_where_the_function_is_in_the_vpc(self):
        # An interface endpoint without private DNS is reachable only from the VPC.
        for name in ["endpoint without VPC", "VPC", "VPC for all"]:
            parameters = PARAMETER_SETS[name]
            template = deployed(**parameters)
            for logical_id in FUNCTIONS:
                with self.subTest(parameters=name, function=logical_id):
                    has_vpc = "VpcConfig" in template["Resources"][logical_id]["Properties"]
                    self.assertEqual(has_vpc, logical_id in in_vpc(parameters))
                    self.assertEqual("SECRETS_MANAGER_ENDPOINT" in env(template, logical_id), has_vpc)

    def test_every_variable_a_function_reads_has_a_parameter(self):
        # The variables the functions' code reads (its *_VAR constants and
        # lookup names), less the SDK's own and rotor's test-only ones.
        sources = "\n".join(p.read_text() for p in (ROOT / "functions").glob("*/src/**/*.rs"))
        for path in ["shared/src/password/mod.rs", "shared/src/lambda.rs", "shared/src/store/aws.rs",
                     "shared/src/metrics.rs"]:
            sources += (ROOT / path).read_text()
        read = set(re.findall(r'_VAR: &str = "([A-Z0-9_]+)"', sources))
        read |= set(re.findall(r'lookup\("([A-Z0-9_]+)"\)', sources))
        read |= set(re.findall(r'\("((?:EXCLUDE|INCLUDE|REQUIRE)_[A-Z_]+)",', sources))
        read |= {"REQUIRE_EACH_INCLUDED_TYPE"}
        # The after-rotation actions' variables (rotor_core::after::vars).
        read |= set(re.findall(r': &str = "(ROTOR_AFTER_[A-Z_]+)"', (ROOT / "shared/src/after/mod.rs").read_text()))
        set_by_template = {v[0] for v in ENV_PARAMETERS.values()} | {"ROTATION_FUNCTION_ARNS",
                                                                       "ROTOR_AFTER_NOTICE_TOPIC"}
        # Deliberately not deployed (see the test below).
        not_deployed = set(NEVER_DEPLOYED)
        # redis-rotation also reads AWS's ElastiCache function's own variables,
        # so a deployment migrated from it keeps its settings; the template's
        # function needs none of them (its 60 s timeout bounds the wait for an
        # active user, and MANAGED_USER_ARNS binds it to users).
        from_aws_function = {"MAX_WAITING_TIME_FOR_ACTIVE_IN_SECONDS", "WAITING_RETRY_INTERVAL_IN_SECONDS",
                             "SECRET_ARN", "USER_NAME"}
        # Lambda sets its own.
        set_by_lambda = {"AWS_LAMBDA_FUNCTION_NAME"}
        self.assertEqual(sorted(read - set_by_template - from_aws_function - not_deployed - set_by_lambda), [])

    def test_test_only_variables_are_never_deployed(self):
        # ROTOR_ALLOW_LOOPBACK_URLS would let a secret's writer send requests
        # to the Lambda Runtime API and extensions; ROTOR_PENDING_LABEL makes
        # every rotation Secrets Manager starts fail (RotateSecret always
        # stages AWSPENDING). No parameter sets either, whatever its value.
        lines = (ROOT / "template.yaml").read_text().splitlines()
        code = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
        self.assertEqual([v for v in NEVER_DEPLOYED if v in code], [])
        for name, parameters in PARAMETER_SETS.items():
            template = deployed(**parameters)
            for logical_id in FUNCTIONS:
                with self.subTest(parameters=name, function=logical_id):
                    self.assertEqual(sorted(set(env(template, logical_id)) & set(NEVER_DEPLOYED)), [])

    def test_rotation_functions_stay_out_of_the_vpc_unless_asked(self):
        template = deployed(**VPC)
        placed = [f for f in FUNCTIONS if "VpcConfig" in template["Resources"][f]["Properties"]]
        self.assertEqual(placed, VPC_FUNCTIONS)

    def test_ca_bundle_layer_on_rds_and_redis_rotation(self):
        layer = f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:rds-ca:3"
        template = deployed(caBundleLayerArn=layer)
        for logical_id in VPC_FUNCTIONS:
            self.assertEqual(template["Resources"][logical_id]["Properties"].get("Layers"), [layer])
            self.assertNotIn("Layers", deployed()["Resources"][logical_id]["Properties"])
        for logical_id in ["GenericRotationFunction", "OauthRotationFunction", "RotationSchedulerFunction"]:
            self.assertNotIn("Layers", template["Resources"][logical_id]["Properties"])

    def test_redis_and_oauth_revoke_previous_are_apart(self):
        # Opposite defaults: oauth-rotation's parameter must not reach
        # redis-rotation, nor redis-rotation's oauth-rotation.
        template = deployed(revokePrevious="next-rotation")
        self.assertNotIn("REVOKE_PREVIOUS", env(template, "RedisRotationFunction"))
        template = deployed(redisRevokePrevious="at-finish")
        self.assertNotIn("REVOKE_PREVIOUS", env(template, "OauthRotationFunction"))
        self.assertEqual(env(template, "RedisRotationFunction")["REVOKE_PREVIOUS"], "at-finish")


class Network(unittest.TestCase):
    ENDPOINT_PARAMETERS = {**VPC, "vpcId": "vpc-1", "createSecretsManagerEndpoint": "true"}

    def test_no_endpoint_unless_asked(self):
        for name, parameters in PARAMETER_SETS.items():
            with self.subTest(parameters=name):
                template = deployed(**parameters)
                self.assertEqual(resources_of_type(template, "AWS::EC2::VPCEndpoint"), {})
                self.assertEqual(resources_of_type(template, "AWS::EC2::SecurityGroup"), {})

    def test_secrets_manager_interface_endpoint(self):
        for extra in [{}, {"vpcForAllFunctions": "true"}]:
            parameters = {**self.ENDPOINT_PARAMETERS, **extra}
            template = deployed(**parameters)
            endpoints = resources_of_type(template, "AWS::EC2::VPCEndpoint")
            self.assertEqual(list(endpoints), ["SecretsManagerEndpoint"])
            self.assertEqual(endpoints["SecretsManagerEndpoint"]["Properties"], {
                "ServiceName": f"com.amazonaws.{REGION}.secretsmanager",
                "VpcEndpointType": "Interface",
                "PrivateDnsEnabled": True,
                "VpcId": "vpc-1",
                "SubnetIds": ["subnet-1", "subnet-2"],
                "SecurityGroupIds": ["<SecretsManagerEndpointSecurityGroup.GroupId>"],
            })
            ingress = resources_of_type(template, "AWS::EC2::SecurityGroupIngress")
            self.assertEqual([r["Properties"] for r in ingress.values()], [{
                "GroupId": "<SecretsManagerEndpointSecurityGroup.GroupId>",
                "Description": "HTTPS from the rotor functions",
                "IpProtocol": "tcp",
                "FromPort": 443,
                "ToPort": 443,
                "SourceSecurityGroupId": "<FunctionSecurityGroup.GroupId>",
            }])
            groups = resources_of_type(template, "AWS::EC2::SecurityGroup")
            self.assertEqual(sorted(groups), ["FunctionSecurityGroup", "SecretsManagerEndpointSecurityGroup"])
            self.assertEqual(groups["FunctionSecurityGroup"]["Properties"]["SecurityGroupEgress"], [{
                "Description": "HTTPS to the Secrets Manager endpoint",
                "IpProtocol": "tcp",
                "FromPort": 443,
                "ToPort": 443,
                "DestinationSecurityGroupId": "<SecretsManagerEndpointSecurityGroup.GroupId>",
            }])
            for logical_id in FUNCTIONS:
                config = template["Resources"][logical_id]["Properties"].get("VpcConfig")
                if logical_id in in_vpc(parameters):
                    self.assertEqual(config["SecurityGroupIds"], ["sg-1", "sg-2", "<FunctionSecurityGroup.GroupId>"])
                else:
                    self.assertIsNone(config)

    def test_endpoint_needs_a_vpc_id(self):
        rules = raw_template()["Rules"]
        self.assertIn("SecretsManagerEndpointNeedsVpcId", rules)


class Alarms(unittest.TestCase):
    def test_created_key_has_the_documented_publisher_statements(self):
        # The statement the SNS documentation gives for AWS services publishing
        # to an encrypted topic: no source condition (EventBridge's calls to KMS
        # need not carry aws:SourceAccount).
        template = deployed()
        key = template["Resources"]["AlarmTopicKey"]["Properties"]["KeyPolicy"]["Statement"]
        publisher = {"Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*"}
        self.assertEqual(sorted((normalized(s) for s in key), key=repr), sorted([
            normalized({"Sid": "AccountAdministersTheKeyThroughIam", "Effect": "Allow",
                        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"}),
            normalized({"Sid": "EventBridgePublishesRotationFailures",
                        "Principal": {"Service": "events.amazonaws.com"}, **publisher}),
            normalized({"Sid": "CloudWatchPublishesAlarms",
                        "Principal": {"Service": "cloudwatch.amazonaws.com"}, **publisher}),
        ], key=repr))
        topic = template["Resources"]["AlarmTopic"]["Properties"]
        self.assertEqual(topic["KmsMasterKeyId"], "<AlarmTopicKey>")

    def test_given_key_is_used_and_none_created(self):
        arn = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/alarms"
        template = deployed(alarmTopicKmsKeyArn=arn)
        self.assertEqual(resources_of_type(template, "AWS::KMS::Key"), {})
        self.assertEqual(template["Resources"]["AlarmTopic"]["Properties"]["KmsMasterKeyId"], arn)

    def test_topic_policy(self):
        template = deployed()
        topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:<AlarmTopic>"
        policy = template["Resources"]["AlarmTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
        self.assertEqual(policy, [
            {"Sid": "RotationFailureRule", "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
             "Action": "sns:Publish", "Resource": topic,
             "Condition": {"ArnEquals": {"aws:SourceArn": f"arn:aws:events:{REGION}:{ACCOUNT}:<RotationFailureRule>"}}},
            {"Sid": "FunctionErrorAlarms", "Effect": "Allow", "Principal": {"Service": "cloudwatch.amazonaws.com"},
             "Action": "sns:Publish", "Resource": topic,
             "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}}},
            {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "sns:Publish", "Resource": topic,
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        ])

    def test_alert_names_the_reason(self):
        rule = deployed()["Resources"]["RotationFailureRule"]["Properties"]
        transformer = rule["Targets"][0]["InputTransformer"]
        self.assertEqual(transformer["InputPathsMap"].get("reason"), "$.detail.errorMessage")
        self.assertIn("<reason>", transformer["InputTemplate"])

    def test_log_groups_outlive_the_stack(self):
        groups = resources_of_type(deployed(), "AWS::Logs::LogGroup")
        self.assertEqual(len(groups), len(FUNCTIONS))
        for logical_id, group in groups.items():
            with self.subTest(log_group=logical_id):
                self.assertEqual(group.get("DeletionPolicy"), "Retain")
                self.assertEqual(group.get("UpdateReplacePolicy"), "Retain")


class Scheduler(unittest.TestCase):
    def test_lambda_does_not_retry_a_scheduler_run(self):
        template = deployed()
        configs = resources_of_type(template, "AWS::Lambda::EventInvokeConfig")
        self.assertEqual(len(configs), 1, configs)
        (config,) = configs.values()
        self.assertEqual(config["Properties"]["FunctionName"], "rotor-rotation-scheduler")
        self.assertEqual(config["Properties"]["Qualifier"], "$LATEST")
        self.assertEqual(config["Properties"]["MaximumRetryAttempts"], 0)
        target = template["Resources"]["FleetSchedule"]["Properties"]["Target"]
        self.assertEqual(target["RetryPolicy"]["MaximumRetryAttempts"], 0)

    def test_function_arns_and_allowed_secrets(self):
        for parameters in [{}, SCHEDULER_ARN]:
            variables = env(deployed(**parameters), "RotationSchedulerFunction")
            self.assertEqual(variables["ROTATION_FUNCTION_ARNS"].split(","), scheduler_function_arns(parameters))
            self.assertNotIn("ROTATION_ALLOWED_SECRETS", variables)
        variables = env(deployed(schedulerAllowedSecrets=ALLOWED_SECRETS), "RotationSchedulerFunction")
        self.assertEqual(variables["ROTATION_ALLOWED_SECRETS"], ALLOWED_SECRETS)

    def test_only_allow_listed_secrets_without_a_function_may_be_given_one(self):
        # A secret with no rotation function has no AllowRotationLambdaArn, so
        # the statement above cannot match it: the allow-list statement may,
        # for exactly the listed secrets and schedulerRotationLambdaArn, when
        # they have no function or that one already.
        role = deployed(**SCHEDULER_ARN, schedulerAllowedSecrets=ALLOWED_SECRETS)["Resources"]["RotationSchedulerRole"]
        rotate = {s["Sid"]: s for s in statements(role) if "secretsmanager:RotateSecret" in as_list(s["Action"])}
        self.assertEqual(sorted(rotate), ["ConfigureAllowListedSecretsOnly", "RotateOnlyThroughTheseFunctions"])
        configure = rotate["ConfigureAllowListedSecretsOnly"]
        self.assertEqual(as_list(configure["Resource"]), ALLOWED_SECRETS.split(","))
        self.assertEqual(configure["Condition"]["ArnEquals"],
                         {"secretsmanager:RotationLambdaARN": SCHEDULER_ARN["schedulerRotationLambdaArn"]})
        self.assertEqual(configure["Condition"]["ArnEqualsIfExists"],
                         {"secretsmanager:resource/AllowRotationLambdaArn": SCHEDULER_ARN["schedulerRotationLambdaArn"]})
        # Without the scheduler's own function, the allow-list grants nothing.
        role = deployed(schedulerAllowedSecrets=ALLOWED_SECRETS)["Resources"]["RotationSchedulerRole"]
        rotate = [s for s in statements(role) if "secretsmanager:RotateSecret" in as_list(s["Action"])]
        self.assertEqual(len(rotate), 1, rotate)

    def test_rotate_secret_never_repoints_a_secret(self):
        # What rotation-scheduler does (functions/scheduler/src/authority.rs),
        # and all its role allows: a secret already rotated by one of the
        # stack's functions (or schedulerRotationLambdaArn) is rotated naming
        # no function; an allow-listed secret with no function yet, or with
        # schedulerRotationLambdaArn already, may be given
        # schedulerRotationLambdaArn. No request names a function for a secret
        # rotated by another (not even by another of the stack's), and none
        # changes the rotation rules. Evaluated as IAM evaluates the role
        # (iam.py), for every pair of the secret's function and the named one.
        foreign = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:team-b-rotation"
        listed = ALLOWED_SECRETS.split(",")[0]
        unlisted = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:app/other-MnOpQr"
        for parameters in [{}, SCHEDULER_ARN, {**SCHEDULER_ARN, "schedulerAllowedSecrets": ALLOWED_SECRETS}]:
            role = deployed(**parameters)["Resources"]["RotationSchedulerRole"]
            assign = parameters.get("schedulerRotationLambdaArn")
            arns = scheduler_function_arns(parameters)
            for secret in [unlisted, listed]:
                allow_listed = secret in parameters.get("schedulerAllowedSecrets", "").split(",")
                for current in [*arns, foreign, None]:
                    for named in [None, *arns, foreign]:
                        if named is None:
                            want = current in arns
                        else:
                            want = allow_listed and named == assign and current in (None, assign)
                        context = {"secretsmanager:ModifyRotationRules": "false"}
                        if current:
                            context["secretsmanager:resource/AllowRotationLambdaArn"] = current
                        if named:
                            context["secretsmanager:RotationLambdaARN"] = named
                        with self.subTest(parameters=sorted(parameters), secret=secret, current=current, named=named):
                            self.assertEqual(allows(statements(role), "secretsmanager:RotateSecret", secret, context), want)
                            rules = {**context, "secretsmanager:ModifyRotationRules": "true"}
                            self.assertFalse(allows(statements(role), "secretsmanager:RotateSecret", secret, rules))


class Deployment(unittest.TestCase):
    def test_first_deploy_does_not_rotate_at_once(self):
        secret = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:app-AbCdEf"
        template = deployed(genericRotationSecretArn=secret, rdsRotationSecretArn=secret,
                            oauthRotationSecretArn=secret, redisRotationSecretArn=secret,
                            ldapRotationSecretArn=secret, iamRotationSecretArn=secret)
        schedules = resources_of_type(template, "AWS::SecretsManager::RotationSchedule")
        self.assertEqual(len(schedules), len(ROTATION_FUNCTIONS))
        for logical_id, schedule in schedules.items():
            with self.subTest(schedule=logical_id):
                self.assertEqual(schedule["Properties"]["RotateImmediatelyOnUpdate"], "false")

    def test_build_and_deploy_cannot_disagree_on_the_architecture(self):
        self.assertNotIn("architecture", raw_template()["Parameters"])
        for logical_id in FUNCTIONS:
            self.assertEqual(deployed()["Resources"][logical_id]["Properties"]["Architectures"], ["arm64"])
        config = tomllib.loads((ROOT / "samconfig.toml").read_text())
        build = config["default"]["build"]["parameters"]
        deploy = config["default"]["deploy"]["parameters"]
        self.assertTrue(build.get("beta_features"))
        self.assertEqual(deploy.get("capabilities"), "CAPABILITY_IAM")
        for command in config["default"].values():
            overrides = str(command.get("parameters", {}).get("parameter_overrides", ""))
            self.assertNotIn("architecture", overrides)

    def test_rotation_lambda_arn_output(self):
        # CDK's SecretRotation and AWS's rotation apps read this output.
        outputs = deployed()["Outputs"]
        self.assertEqual(outputs.get("RotationLambdaARN"), function_arn("RdsRotationFunction"))

    def test_rds_api_permission_is_a_parameter_enabled_by_default(self):
        spec = raw_template()["Parameters"]["rdsDescribeDatabases"]
        self.assertEqual(spec["Default"], "true")


class Readme(unittest.TestCase):
    """The README's permission table lists, for each role, the statements the
    tests above expect (for the parameter set that enables every one)."""

    def test_permission_table_matches_the_roles(self):
        text = (ROOT / "README.md").read_text()
        start = text.index("| role | statement | actions | resources | condition |")
        rows = []
        for line in text[start:].splitlines()[2:]:
            if not line.startswith("|"):
                break
            cells = [c.strip() for c in line.strip("|").split("|")]
            actions = sorted(re.findall(r"`([a-z0-9]+:[A-Za-z0-9*]+)`", cells[2]))
            # A row may stand for several roles: "`generic-rotation`, `rds-rotation`".
            for role in cells[0].split(","):
                rows.append((role.strip().strip("`"), cells[1].strip("`"), actions))
        parameters = PARAMETER_SETS["everything"]
        want = []
        for logical_id in FUNCTIONS:
            for statement in expected_statements(logical_id, parameters):
                want.append((FUNCTIONS[logical_id], statement["Sid"], sorted(as_list(statement["Action"]))))
        self.assertEqual(sorted(rows), sorted(want))


if __name__ == "__main__":
    unittest.main()
