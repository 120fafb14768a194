"""The template's metrics, alarms, dashboard and rotation notices, as deployed.

The alarms and the dashboard read the metrics the functions print (namespace
rotor, shared/src/metrics.rs); the notice rules turn Secrets Manager's rotation
events into messages on a topic of their own. These tests check them on the
translated template (deployed.py): each alarm exactly, each duration threshold
against its function's timeout, every metric the dashboard and the alarms name
against the names the functions publish, the notice topic's key and policy
(evaluated with iam.py), and the notice rules matched and transformed on the
events AWS documents, as EventBridge would.

Run by scripts/check-template.sh, with the other tests of this directory.
"""

import json
import re
import unittest

from deployed import ACCOUNT, REGION, ROOT, deployed, raw_template, resources_of_type
from iam import allows
from test_deployed import FUNCTIONS, NOTICES, ROTATION_FUNCTIONS

ALARM_TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:<AlarmTopic>"
NOTICE_TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:<NoticeTopic>"
NOTICE_RULES = ["RotationNoticeRule", "RotationFailureNoticeRule"]
SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:team-a/orders-AbCdEf"


def function_name(logical_id):
    return f"rotor-{FUNCTIONS[logical_id]}"


def published_metrics():
    """The metric names the functions publish: the constants of metrics.rs's
    `names` module."""
    source = (ROOT / "shared/src/metrics.rs").read_text()
    block = source[source.index("pub mod names {"):source.index("pub mod dimensions {")]
    return set(re.findall(r'pub const [A-Z_]+: &str = "([A-Za-z]+)";', block))


def rule_arn(logical_id):
    return f"arn:aws:events:{REGION}:{ACCOUNT}:<{logical_id}>"


# Secrets Manager's rotation events as EventBridge delivers them (AWS Service
# Event via CloudTrail): the detail of the RotationFailed example in the
# Secrets Manager user guide ("Logging AWS Secrets Manager events with AWS
# CloudTrail"), with the event name and the secret varied.
def rotation_event(name, secret=SECRET, detail_type="AWS Service Event via CloudTrail"):
    detail = {
        "eventVersion": "1.08",
        "userIdentity": {"accountId": ACCOUNT, "invokedBy": "secretsmanager.amazonaws.com"},
        "eventTime": "2022-09-13T02:17:48Z",
        "eventSource": "secretsmanager.amazonaws.com",
        "eventName": name,
        "awsRegion": REGION,
        "sourceIPAddress": "secretsmanager.amazonaws.com",
        "userAgent": "secretsmanager.amazonaws.com",
        "requestParameters": None,
        "responseElements": None,
        "additionalEventData": {"SecretId": secret},
        "requestID": f"Rotation-{secret}-eeb681b1-a07d-4aeb-9b61-1ee6590ec295",
        "eventID": "EXAMPLE3-90ab-cdef-fedc-ba987EXAMPLE",
        "readOnly": False,
        "eventType": "AwsServiceEvent",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
    }
    if name == "RotationFailed":
        detail["errorMessage"] = (
            f"Error when executing lambda arn:aws:lambda:{REGION}:{ACCOUNT}:function:rotor-rds-rotation "
            "during setSecret step"
        )
    return {
        "version": "0", "id": "dd5fd657-7361-f5d2-0c0f-0fe27390611b", "detail-type": detail_type,
        "source": "aws.secretsmanager", "account": ACCOUNT, "time": "2022-09-13T02:17:48Z",
        "region": REGION, "resources": [], "detail": detail,
    }


def matches(pattern, event):
    """EventBridge's matching, for what the rules use: every key of the pattern
    present, each value one of the listed strings or `{"prefix": ...}`."""
    for key, wanted in pattern.items():
        if key not in event:
            return False
        value = event[key]
        if isinstance(wanted, dict):
            if not isinstance(value, dict) or not matches(wanted, value):
                return False
            continue
        def one(option):
            if isinstance(option, dict):
                (operator, operand), = option.items()
                if operator != "prefix":
                    raise ValueError(f"the test does not know the operator {operator}")
                return isinstance(value, str) and value.startswith(operand)
            return value == option
        if not any(one(option) for option in wanted):
            return False
    return True


def transform(transformer, event):
    """The input transformer as EventBridge applies it: each variable's path
    read from the event, inserted in the template JSON-escaped."""
    text = transformer["InputTemplate"]
    for variable, path in transformer["InputPathsMap"].items():
        assert path.startswith("$."), path
        value = event
        for part in path[2:].split("."):
            value = value[part]
        text = text.replace(f"<{variable}>", json.dumps(value)[1:-1])
    return json.loads(text)


class Alarms(unittest.TestCase):
    def alarms(self, **parameters):
        return resources_of_type(deployed(**parameters), "AWS::CloudWatch::Alarm")

    def test_a_step_a_retry_cannot_fix_alarms_per_function(self):
        alarms = self.alarms()
        for logical_id in ROTATION_FUNCTIONS:
            with self.subTest(function=logical_id):
                alarm = alarms[logical_id.replace("Function", "FailuresAlarm")]["Properties"]
                self.assertEqual({k: v for k, v in alarm.items() if k != "AlarmDescription"}, {
                    "Namespace": "rotor",
                    "MetricName": "Steps",
                    "Dimensions": [{"Name": "Function", "Value": function_name(logical_id)},
                                   {"Name": "Outcome", "Value": "NotRetryable"}],
                    "Statistic": "Sum",
                    "Period": 300,
                    "EvaluationPeriods": 1,
                    "Threshold": 1,
                    "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                    "TreatMissingData": "notBreaching",
                    "AlarmActions": [ALARM_TOPIC],
                })

    def test_duration_alarms_at_80_percent_of_each_timeout(self):
        template = deployed()
        alarms = resources_of_type(template, "AWS::CloudWatch::Alarm")
        for logical_id in FUNCTIONS:
            with self.subTest(function=logical_id):
                timeout = template["Resources"][logical_id]["Properties"]["Timeout"]
                alarm = alarms[logical_id.replace("Function", "DurationAlarm")]["Properties"]
                metric = "RunDuration" if logical_id == "RotationSchedulerFunction" else "StepDuration"
                self.assertEqual(alarm["MetricName"], metric)
                self.assertEqual(alarm["Namespace"], "rotor")
                self.assertEqual(alarm["Dimensions"], [{"Name": "Function", "Value": function_name(logical_id)}])
                self.assertEqual(alarm["Statistic"], "Maximum")
                self.assertEqual(alarm["Threshold"], timeout * 1000 * 8 // 10)
                self.assertEqual(alarm["ComparisonOperator"], "GreaterThanThreshold")
                self.assertEqual(alarm["TreatMissingData"], "notBreaching")
                self.assertEqual(alarm["AlarmActions"], [ALARM_TOPIC])
                self.assertIn(f"{timeout} s", alarm["AlarmDescription"])

    def test_overdue_rotations_alarm(self):
        alarm = self.alarms()["RotationsOverdueAlarm"]["Properties"]
        self.assertEqual({k: v for k, v in alarm.items() if k != "AlarmDescription"}, {
            "Namespace": "rotor",
            "MetricName": "Overdue",
            "Dimensions": [{"Name": "Function", "Value": function_name("RotationSchedulerFunction")}],
            "Statistic": "Maximum",
            "Period": 86400,
            "EvaluationPeriods": 1,
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": [ALARM_TOPIC],
        })

    def test_every_metric_alarm_names_a_published_metric_and_may_publish(self):
        # CloudWatch may publish to the alarm topic: the topic policy's
        # statement for cloudwatch.amazonaws.com, from this account.
        template = deployed()
        policy = template["Resources"]["AlarmTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
        cloudwatch = [s for s in policy if s["Principal"] in ({"Service": "cloudwatch.amazonaws.com"}, "*")]
        self.assertTrue(allows(cloudwatch, "sns:Publish", ALARM_TOPIC,
                               {"aws:SourceAccount": ACCOUNT, "aws:SecureTransport": "true"}))
        names = published_metrics()
        rotor_alarms = [a["Properties"] for a in resources_of_type(template, "AWS::CloudWatch::Alarm").values()
                        if a["Properties"]["Namespace"] == "rotor"]
        self.assertEqual(len(rotor_alarms), 2 * len(ROTATION_FUNCTIONS) + 2)
        for alarm in rotor_alarms:
            self.assertIn(alarm["MetricName"], names)


class Dashboard(unittest.TestCase):
    def test_the_dashboard_graphs_the_stacks_functions_from_published_metrics(self):
        template = deployed()
        dashboard = template["Resources"]["RotationsDashboard"]["Properties"]
        self.assertEqual(dashboard["DashboardName"], "rotor-rotations")
        body = json.loads(dashboard["DashboardBody"])
        names = published_metrics()
        stack_functions = {function_name(f) for f in FUNCTIONS}
        graphed = set()
        for widget in body["widgets"]:
            if widget["type"] != "metric":
                continue
            self.assertEqual(widget["properties"]["region"], REGION)
            for metric in widget["properties"]["metrics"]:
                if "expression" in metric[0]:
                    continue
                namespace, name, *rest = [m for m in metric if not isinstance(m, dict)]
                self.assertEqual(namespace, "rotor")
                self.assertIn(name, names)
                dimensions = dict(zip(rest[::2], rest[1::2]))
                self.assertIn(dimensions["Function"], stack_functions)
                graphed.add((name, dimensions["Function"]))
        for logical_id in ROTATION_FUNCTIONS:
            for name in ["RotationsCompleted", "Steps", "StepDuration", "RotationDuration", "ReplacedCredentialAge"]:
                self.assertIn((name, function_name(logical_id)), graphed)
        for name in ["RotationsStarted", "Skipped", "Overdue", "RateUsed"]:
            self.assertIn((name, function_name("RotationSchedulerFunction")), graphed)

    def test_no_dashboard_when_not_asked(self):
        template = deployed(createDashboard="false")
        self.assertEqual(resources_of_type(template, "AWS::CloudWatch::Dashboard"), {})
        self.assertNotIn("DashboardName", template["Outputs"])


class Notices(unittest.TestCase):
    def test_nothing_unless_asked(self):
        template = deployed(noticeSubscriberEndpoint="ops@example.com")
        for logical_id in ["NoticeTopic", "NoticeTopicPolicy", "NoticeSubscription", *NOTICE_RULES]:
            self.assertNotIn(logical_id, template["Resources"])
        self.assertNotIn("NoticeTopicArn", template["Outputs"])

    def test_the_topic_is_encrypted_with_the_alarm_topics_key(self):
        template = deployed(**NOTICES)
        self.assertEqual(template["Resources"]["NoticeTopic"]["Properties"]["KmsMasterKeyId"], "<AlarmTopicKey>")
        self.assertEqual(template["Outputs"]["NoticeTopicArn"], NOTICE_TOPIC)
        # The created key lets EventBridge encrypt for the topic.
        key = template["Resources"]["AlarmTopicKey"]["Properties"]["KeyPolicy"]["Statement"]
        self.assertTrue(any(s["Principal"] == {"Service": "events.amazonaws.com"}
                            and "kms:GenerateDataKey*" in s["Action"] for s in key))
        given = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/alarms"
        template = deployed(**NOTICES, alarmTopicKmsKeyArn=given)
        self.assertEqual(template["Resources"]["NoticeTopic"]["Properties"]["KmsMasterKeyId"], given)

    def test_only_the_notice_rules_may_publish_and_only_over_tls(self):
        policy = deployed(**NOTICES)["Resources"]["NoticeTopicPolicy"]["Properties"]
        self.assertEqual(policy["Topics"], [NOTICE_TOPIC])
        statements = policy["PolicyDocument"]["Statement"]
        self.assertEqual(statements, [
            {"Sid": "RotationNoticeRules", "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
             "Action": "sns:Publish", "Resource": NOTICE_TOPIC,
             "Condition": {"ArnEquals": {"aws:SourceArn": [rule_arn(r) for r in NOTICE_RULES]}}},
            {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "sns:Publish", "Resource": NOTICE_TOPIC,
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        ])
        for source, allowed in [(rule_arn("RotationNoticeRule"), True), (rule_arn("RotationFailureNoticeRule"), True),
                                (rule_arn("RotationFailureRule"), False), (rule_arn("SomeoneElsesRule"), False)]:
            with self.subTest(source=source):
                context = {"aws:SourceArn": source, "aws:SecureTransport": "true"}
                self.assertEqual(allows(statements, "sns:Publish", NOTICE_TOPIC, context), allowed)
        plain = {"aws:SourceArn": rule_arn("RotationNoticeRule"), "aws:SecureTransport": "false"}
        self.assertFalse(allows(statements, "sns:Publish", NOTICE_TOPIC, plain))
        self.assertFalse(allows(statements, "sns:Subscribe", NOTICE_TOPIC, {"aws:SecureTransport": "true"}))

    def test_each_rotation_event_of_the_prefixs_secrets_reaches_the_topic_once(self):
        rules = {r: deployed(**NOTICES)["Resources"][r]["Properties"] for r in NOTICE_RULES}
        for rule in rules.values():
            self.assertEqual(rule["State"], "ENABLED")
            self.assertEqual([t["Arn"] for t in rule["Targets"]], [NOTICE_TOPIC])
        outside = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:team-b/orders-AbCdEf"
        cases = [
            (rotation_event("RotationStarted"), "RotationNoticeRule"),
            (rotation_event("RotationSucceeded"), "RotationNoticeRule"),
            (rotation_event("RotationAbandoned"), "RotationNoticeRule"),
            (rotation_event("RotationFailed"), "RotationFailureNoticeRule"),
            (rotation_event("RotationSucceeded", secret=outside), None),
            (rotation_event("TestRotationFailed"), None),
            (rotation_event("RotationSucceeded", detail_type="AWS API Call via CloudTrail"), None),
        ]
        for event, rule in cases:
            with self.subTest(event=event["detail"]["eventName"], secret=event["detail"]["additionalEventData"]):
                got = [r for r, props in rules.items() if matches(props["EventPattern"], event)]
                self.assertEqual(got, [rule] if rule else [])
        # No prefix: every secret of the account and region.
        everyone = deployed(rotationNotices="true")["Resources"]["RotationNoticeRule"]["Properties"]
        self.assertTrue(matches(everyone["EventPattern"], rotation_event("RotationSucceeded", secret=outside)))
        elsewhere = outside.replace(ACCOUNT, "999999999999")
        self.assertFalse(matches(everyone["EventPattern"], rotation_event("RotationSucceeded", secret=elsewhere)))

    def test_each_message_names_secret_rotation_and_outcome_and_no_value(self):
        rules = {r: deployed(**NOTICES)["Resources"][r]["Properties"] for r in NOTICE_RULES}
        for rule_id, name in [("RotationNoticeRule", "RotationSucceeded"), ("RotationFailureNoticeRule", "RotationFailed")]:
            with self.subTest(rule=rule_id):
                transformer = rules[rule_id]["Targets"][0]["InputTransformer"]
                # Only these parts of an event: none can hold a value.
                allowed = {"$.detail.eventName", "$.detail.additionalEventData.SecretId", "$.detail.requestID",
                           "$.detail.errorMessage", "$.region", "$.time"}
                self.assertLessEqual(set(transformer["InputPathsMap"].values()), allowed)
                event = rotation_event(name)
                message = transform(transformer, event)
                self.assertEqual(message["notice"], "rotor rotation")
                self.assertEqual(message["stack"], "rotor")
                self.assertEqual(message["outcome"], name)
                self.assertEqual(message["secret"], SECRET)
                self.assertEqual(message["rotation"], event["detail"]["requestID"])
                self.assertEqual(message["region"], REGION)
                if name == "RotationFailed":
                    self.assertIn("function:rotor-rds-rotation during setSecret", message["reason"])
                else:
                    self.assertNotIn("reason", message)

    def test_subscriber_as_given(self):
        subscription = deployed(**NOTICES)["Resources"]["NoticeSubscription"]["Properties"]
        self.assertEqual(subscription, {"TopicArn": NOTICE_TOPIC, "Protocol": "email", "Endpoint": "ops@example.com"})
        queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:rotations"
        template = deployed(rotationNotices="true", noticeSubscriberProtocol="sqs", noticeSubscriberEndpoint=queue)
        self.assertEqual(template["Resources"]["NoticeSubscription"]["Properties"]["Endpoint"], queue)
        self.assertNotIn("NoticeSubscription", deployed(rotationNotices="true")["Resources"])

    def test_parameters_default_to_off(self):
        parameters = raw_template()["Parameters"]
        self.assertEqual(parameters["rotationNotices"]["Default"], "false")
        self.assertEqual(parameters["metricsSecretDimension"]["Default"], "false")


class Readme(unittest.TestCase):
    def test_every_published_metric_is_documented(self):
        text = (ROOT / "README.md").read_text()
        section = text[text.index("## Metrics"):]
        for name in published_metrics():
            self.assertIn(f"`{name}`", section, name)


if __name__ == "__main__":
    unittest.main()
