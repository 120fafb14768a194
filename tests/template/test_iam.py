"""The evaluator of iam.py, on the rules of the IAM User Guide it follows, so
that the role tests that use it rest on something checked."""

import unittest

from iam import allows

SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-AbCdEf"
ONE = "arn:aws:lambda:us-east-1:123456789012:function:one"
TWO = "arn:aws:lambda:us-east-1:123456789012:function:two"


def rotate(condition, effect="Allow"):
    return {"Effect": effect, "Action": "secretsmanager:RotateSecret",
            "Resource": "arn:aws:secretsmanager:us-east-1:123456789012:secret:*", "Condition": condition}


class Evaluator(unittest.TestCase):
    def decide(self, statements, context, action="secretsmanager:RotateSecret", resource=SECRET):
        return allows(statements, action, resource, context)

    def test_a_missing_key_fails_an_operator_unless_if_exists(self):
        plain = [rotate({"ArnEquals": {"secretsmanager:RotationLambdaARN": ONE}})]
        if_exists = [rotate({"ArnEqualsIfExists": {"secretsmanager:RotationLambdaARN": ONE}})]
        self.assertFalse(self.decide(plain, {}))
        self.assertTrue(self.decide(if_exists, {}))
        self.assertTrue(self.decide(plain, {"secretsmanager:RotationLambdaARN": ONE}))
        self.assertFalse(self.decide(if_exists, {"secretsmanager:RotationLambdaARN": TWO}))

    def test_null_tells_a_missing_key_from_a_present_one(self):
        absent = [rotate({"Null": {"secretsmanager:RotationLambdaARN": "true"}})]
        present = [rotate({"Null": {"secretsmanager:RotationLambdaARN": "false"}})]
        self.assertTrue(self.decide(absent, {}))
        self.assertFalse(self.decide(absent, {"secretsmanager:RotationLambdaARN": ONE}))
        self.assertFalse(self.decide(present, {}))
        self.assertTrue(self.decide(present, {"secretsmanager:RotationLambdaARN": ONE}))

    def test_operators_and_keys_are_anded_values_ored(self):
        both = [rotate({
            "ArnEquals": {"secretsmanager:resource/AllowRotationLambdaArn": [ONE, TWO]},
            "BoolIfExists": {"secretsmanager:ModifyRotationRules": "false"},
        })]
        self.assertTrue(self.decide(both, {"secretsmanager:resource/AllowRotationLambdaArn": TWO}))
        self.assertFalse(self.decide(both, {"secretsmanager:resource/AllowRotationLambdaArn": TWO,
                                            "secretsmanager:ModifyRotationRules": "true"}))

    def test_arns_match_part_by_part_and_key_names_ignore_case(self):
        like = [rotate({"ArnLike": {"secretsmanager:rotationlambdaarn": "arn:aws:lambda:*:123456789012:function:o*"}})]
        self.assertTrue(self.decide(like, {"secretsmanager:RotationLambdaARN": ONE}))
        self.assertFalse(self.decide(like, {"secretsmanager:RotationLambdaARN": TWO}))
        # A wildcard does not reach across the parts' colons.
        self.assertFalse(self.decide(like, {"secretsmanager:RotationLambdaARN": "arn:aws:lambda:us-east-1:999:x:123456789012:function:one"}))

    def test_action_and_resource_must_match_and_deny_wins(self):
        allow = rotate({})
        self.assertFalse(self.decide([allow], {}, action="secretsmanager:GetSecretValue"))
        self.assertFalse(self.decide([allow], {}, resource="arn:aws:secretsmanager:us-east-1:999999999999:secret:x"))
        self.assertFalse(self.decide([allow, rotate({}, effect="Deny")], {}))

    def test_an_unknown_operator_is_an_error_not_an_answer(self):
        with self.assertRaises(ValueError):
            self.decide([rotate({"StringLike": {"aws:ResourceTag/team": "a*"}})], {})
        with self.assertRaises(ValueError):
            self.decide([rotate({"StringLikeIfExists": {"aws:ResourceTag/team": "a*"}})], {})


if __name__ == "__main__":
    unittest.main()
