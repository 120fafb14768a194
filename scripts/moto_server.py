"""Runs moto's Secrets Manager emulator on 127.0.0.1 at a free port.

Prints the port on the first line of stdout, then serves until its standard
input closes, so that the process that started it (a test binary, the rotor
CLI) stops it simply by exiting, even when it dies without cleaning up.

Six changes to moto. Two for tests of time-based behaviour:
- a clock the parent can shift: the line `offset N` on stdin sets moto's time
  to the real time plus N seconds and answers `ok`, so that secrets created
  while it is set back have a CreatedDate in the past (offset 0, the default,
  is moto as it comes);
- ListSecretVersionIds answers each version's real creation time, as AWS
  does, where moto 5.2 answers the current time.
Two where moto departs from AWS's documented behaviour in ways that hide the
races a rotation function must survive:
- PutSecretValue with the token of a version that already holds a different
  value fails with ResourceExistsException, as on AWS (moto 5.2 overwrites the
  value of a version staged AWSPENDING);
- RotateSecret fails with InvalidRequestException while another version is
  AWSPENDING and not AWSCURRENT (a rotation in flight), as on AWS; the same
  token again is accepted and changes nothing. moto 5.2 checks the opposite
  case. Both checks and the staging run under one lock, so two concurrent
  requests cannot both pass.
One where moto departs from AWS in a way that hides whether a caller re-points
a secret's rotation:
- RotateSecret without RotationLambdaARN rotates with the function the secret
  is already configured with, as on AWS; moto 5.2 forgets the function and
  promotes a value-less version at once. A secret with no function keeps
  moto's behaviour (AWS would refuse the call), which some tests use to give
  a secret a LastRotatedDate.
One where moto drops what AWS keeps, so that rotation windows can be tested:
- RotateSecret keeps RotationRules' ScheduleExpression and Duration, turns
  rotation on for a ScheduleExpression (moto 5.2 does only for
  AutomaticallyAfterDays), and DescribeSecret and ListSecrets answer them, as
  on AWS.
"""

import json
import os
import sys
import threading
import time

import moto.secretsmanager.models as models
from moto.server import ThreadedMotoServer


class ShiftedClock:
    offset = 0

    @staticmethod
    def time():
        return time.time() + ShiftedClock.offset


models.time = ShiftedClock
_list_versions = models.SecretsManagerBackend.list_secret_version_ids


def list_secret_version_ids(self, secret_id):
    answer = json.loads(_list_versions(self, secret_id))
    versions = self.secrets[secret_id].versions
    for entry in answer["Versions"]:
        entry["CreatedDate"] = versions[entry["VersionId"]]["createdate"]
    return json.dumps(answer)


models.SecretsManagerBackend.list_secret_version_ids = list_secret_version_ids

_check_existing = models.SecretsManagerBackend._check_with_existing_secrets_and_versions


def check_existing(self, secret_name, client_request_token, secret_string, secret_binary, on_create=False):
    secret = self.secrets[secret_name] if secret_name in self.secrets.keys() else None
    versions = getattr(secret, "versions", {})
    version = versions.get(client_request_token) if client_request_token else None
    if version is not None and "AWSPENDING" in version.get("version_stages", []):
        held = (version.get("secret_string"), version.get("secret_binary"))
        if held == (None, None):
            return None  # staged by RotateSecret, no value yet: this sets it
        if held == (secret_string, secret_binary):
            return secret
        raise models.ResourceExistsException(
            f"You can't use ClientRequestToken {client_request_token} because that value is already in use for a version of secret {secret.arn}."
        )
    return _check_existing(self, secret_name, client_request_token, secret_string, secret_binary, on_create)


models.SecretsManagerBackend._check_with_existing_secrets_and_versions = check_existing

_rotate = models.SecretsManagerBackend.rotate_secret
_rotation_lock = threading.Lock()


def rotate_secret(self, secret_id, client_request_token=None, rotation_lambda_arn=None, rotation_rules=None, rotate_immediately=True):
    with _rotation_lock:
        secret = self.secrets[secret_id] if self._is_valid_identifier(secret_id) else None
        if secret is not None:
            for version_id, version in getattr(secret, "versions", {}).items():
                stages = version.get("version_stages", [])
                if "AWSPENDING" not in stages or "AWSCURRENT" in stages:
                    continue
                if version_id == client_request_token:
                    return secret.to_short_dict()
                raise models.InvalidRequestException(
                    "A previous rotation isn't complete. That rotation will be reattempted."
                )
        if not rotation_lambda_arn and secret is not None:
            rotation_lambda_arn = getattr(secret, "rotation_lambda_arn", None) or None
        try:
            return _rotate(self, secret_id, client_request_token, rotation_lambda_arn, rotation_rules, rotate_immediately)
        finally:
            # Also when the function could not be invoked: the settings stay.
            if secret is not None and rotation_rules:
                secret.schedule_expression = rotation_rules.get("ScheduleExpression")
                secret.window_duration = rotation_rules.get("Duration")
                if secret.schedule_expression:
                    secret.rotation_enabled = True


models.SecretsManagerBackend.rotate_secret = rotate_secret

_to_dict = models.FakeSecret.to_dict


def to_dict(self):
    answer = _to_dict(self)
    rules = answer.get("RotationRules")
    if rules is not None:
        for key, kept in (("ScheduleExpression", "schedule_expression"), ("Duration", "window_duration")):
            value = getattr(self, kept, None)
            if value:
                rules[key] = value
    return answer


models.FakeSecret.to_dict = to_dict


def main() -> None:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    print(port, flush=True)
    # Serve until the parent closes our stdin (or dies).
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "offset":
            ShiftedClock.offset = int(argument)
            print("ok", flush=True)
    server.stop()
    os._exit(0)


if __name__ == "__main__":
    main()
