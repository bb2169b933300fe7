"""``python -m benchfab.workloads.mpi_agent HOST WORDS...``: Open MPI's remote launcher.

mpirun calls it as it would call ssh (``--mca plm_rsh_agent``): the node's address, then
the daemon's command line. It finds the node's launch port in ``AGENTS_ENV`` (set by rank
0 from the nodes' registrations, benchfab.workloads.nccl_tests_mpi), hands the words to
that node's worker over the authenticated channel (benchfab.workloads.mpi_remote) and
relays the daemon's stdout, stderr and exit code, as ssh does; 255 when the node cannot
be reached, as ssh.
"""

from __future__ import annotations

import json
import os
import socket
import sys

from ..errors import WorkloadError
from .mpi_remote import Channel, ChannelError, test_secret

AGENTS_ENV = "BENCHFAB_MPI_AGENTS"  # JSON {address: port} of the nodes' launch listeners
CONNECT_S = 30.0
UNREACHABLE = 255  # ssh's code for "could not run it there"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    while args and args[0].startswith("-"):  # ssh options (plm_rsh_args): benchfab passes none
        args.pop(0)
    if len(args) < 2:
        print("benchfab mpi_agent: usage: HOST COMMAND... (mpirun calls it as its remote launcher)", file=sys.stderr)
        return UNREACHABLE
    host, words = args[0], args[1:]
    try:
        port = int(json.loads(os.environ.get(AGENTS_ENV) or "{}")[host])
    except (KeyError, ValueError, TypeError):
        print(f"benchfab mpi_agent: {host} is not one of this test's nodes ({AGENTS_ENV})", file=sys.stderr)
        return UNREACHABLE
    try:
        secret = test_secret()
        sock = socket.create_connection((host, port), timeout=CONNECT_S)
        channel = Channel.connect(sock, secret, "launcher", "agent")
        sock.settimeout(None)
        channel.send({"words": words})
        while (body := channel.recv()) is not None:
            if "out" in body:
                sys.stdout.buffer.write(str(body["out"]).encode("latin-1"))
                sys.stdout.buffer.flush()
            elif "err" in body:
                sys.stderr.buffer.write(str(body["err"]).encode("latin-1"))
                sys.stderr.buffer.flush()
            elif "exit" in body:
                return int(body["exit"])
    except (OSError, ChannelError, WorkloadError) as exc:
        print(f"benchfab mpi_agent: {host}:{port}: {exc}", file=sys.stderr)
    return UNREACHABLE


if __name__ == "__main__":
    sys.exit(main())
