"""Runs moto's Secrets Manager emulator on 127.0.0.1 at a free port.

Prints the port on the first line of stdout, then serves until its standard
input closes, so that the process that started it (a test binary, the rotor
CLI) stops it simply by exiting, even when it dies without cleaning up.

Two changes to moto, for tests of time-based behaviour:
- a clock the parent can shift: the line `offset N` on stdin sets moto's time
  to the real time plus N seconds and answers `ok`, so that secrets created
  while it is set back have a CreatedDate in the past (offset 0, the default,
  is moto as it comes);
- ListSecretVersionIds answers each version's real creation time, as AWS
  does, where moto 5.2 answers the current time.
"""

import json
import os
import sys
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
