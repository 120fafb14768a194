"""Runs moto's Secrets Manager emulator on 127.0.0.1 at a free port.

Prints the port on the first line of stdout, then serves until its standard
input closes, so that the process that started it (a test binary, the rotor
CLI) stops it simply by exiting, even when it dies without cleaning up.
"""

import os
import sys

from moto.server import ThreadedMotoServer


def main() -> None:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    print(port, flush=True)
    # Block until the parent closes our stdin (or dies).
    while sys.stdin.buffer.read(65536):
        pass
    server.stop()
    os._exit(0)


if __name__ == "__main__":
    main()
