"""``engine: nccl-tests`` over several nodes: one ``mpirun`` from rank 0, no sshd.

Rank 0 listens on its rendezvous address (MASTER_ADDR:MASTER_PORT, workloads.rendezvous);
the first local rank of every other node opens a launch listener of its own (benchfab's
stand-in for sshd, workloads.mpi_remote) and registers it with rank 0 over the same
authenticated channel: its first rank, its slots (ranks on the node) and the port. Rank 0
then writes a hostfile (its own address first, then the nodes in rank order, ``slots`` =
ranks per node, so MPI's ranks are benchfab's) and runs, per size, ``mpirun`` with
benchfab's launcher as Open MPI's remote agent (workloads.mpi_agent), ``-x`` of every
NCCL variable (the rail environment, the profile's and the test's settings) and the
nccl-tests binary with ``-g 1`` (one GPU per MPI rank). mpirun's stdout is nccl-tests'
table, read by the one parser (workloads.nccl_tests_output). At the end rank 0 tells the
nodes the test is over and their listeners close.

Open MPI refuses to run as root unless told: as root, ``--allow-run-as-root`` is passed
(a container's usual user).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import WorkloadError
from ..task import Task
from .base import RankContext
from .mpi_agent import AGENTS_ENV
from .mpi_remote import FIRST_LINE_S, Channel, ChannelError, serve_launches, test_secret, warn
from .nccl_tests_engine import nccl_tests_argv, parse_size_output, require_binary
from .nccl_tests_output import NcclTestsRun
from .rendezvous import listen_socket

LAUNCHER_MODULE = "benchfab.workloads.mpi_agent"
FORWARDED_PREFIXES = ("NCCL_",)  # what -x hands to every rank, whatever its node's environment


@dataclass(frozen=True)
class MpiNode:
    """One node of the launch: where its launch listener is and which ranks it holds."""

    host: str
    first_rank: int
    slots: int
    port: int = 0  # 0: rank 0's own node, which mpirun starts without the launcher


def hostfile_text(nodes: list[MpiNode]) -> str:
    return "".join(f"{n.host} slots={n.slots}\n" for n in nodes)


def mpirun_argv(mpirun: str, hostfile: str, world: int, program: list[str], environ: dict[str, str],
                as_root: bool, python: str) -> list[str]:
    """mpirun's command line: the hostfile's slots in order (rank r on the node holding r),
    benchfab's launcher instead of ssh, no tree spawn (every daemon starts from rank 0's
    node, where the nodes' ports are known), and -x of the NCCL variables."""
    argv = [mpirun, *(["--allow-run-as-root"] if as_root else []), "--hostfile", hostfile, "-np", str(world),
            "--map-by", "slot", "--bind-to", "none",
            "--mca", "plm_rsh_agent", f"{python} -m {LAUNCHER_MODULE}", "--mca", "plm_rsh_no_tree_spawn", "1"]
    for name in sorted(environ):
        if name.startswith(FORWARDED_PREFIXES):
            argv += ["-x", name]
    return argv + program


def gather_nodes(ctx: RankContext, secret: bytes, deadline: float) -> tuple[list[MpiNode], list[Channel]]:
    """Rank 0: every node of the test, its own first, once the others have registered."""
    listener = listen_socket(ctx.addr, ctx.port)
    own = MpiNode(listener.getsockname()[0], 0, ctx.local_world)
    nodes: dict[int, MpiNode] = {}
    channels: list[Channel] = []
    try:
        while sum(n.slots for n in nodes.values()) < ctx.world - ctx.local_world:
            listener.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                conn, peer = listener.accept()
            except TimeoutError:
                raise WorkloadError(f"nccl-tests over MPI: {len(nodes)} of the test's other nodes registered "
                                    f"with rank 0 in time", hint="see the other ranks' logs") from None
            conn.settimeout(FIRST_LINE_S)
            try:
                channel = Channel.accept(conn, secret, "head", "node")
                body = channel.recv() or {}
                node = MpiNode(peer[0], int(body["first_rank"]), int(body["slots"]), int(body["port"]))
            except (ChannelError, OSError, KeyError, ValueError, TypeError) as exc:
                warn(f"dropped a registration from {peer[0]}: {exc}")
                conn.close()
                continue
            conn.settimeout(None)
            nodes[node.first_rank] = node
            channels.append(channel)
    finally:
        listener.close()
    ordered = [own, *(nodes[r] for r in sorted(nodes))]
    first = 0
    for node in ordered:
        if node.first_rank != first:
            raise WorkloadError(f"nccl-tests over MPI: the node at {node.host} holds ranks from {node.first_rank}, "
                                f"expected {first}: MPI's ranks would not be benchfab's")
        first += node.slots
    return ordered, channels


def run_mpirun(task: Task, ctx: RankContext, program_for_size: list[list[str]], timeout_s: float) -> list[str]:
    """Rank 0: gather the nodes, run mpirun once per command, return each one's stdout."""
    mpirun = shutil.which("mpirun")
    if mpirun is None:
        raise WorkloadError("engine: nccl-tests over several nodes needs mpirun (Open MPI), not found on PATH",
                            hint="use the worker image (docker/), which has Open MPI, or run the test on one node")
    secret = test_secret()
    started = time.monotonic()
    nodes, channels = gather_nodes(ctx, secret, started + task.rendezvous_timeout)
    ctx.log(f"nccl-tests over MPI: {len(nodes)} nodes registered in {time.monotonic() - started:.2f} s: "
            + ", ".join(f"{n.host} ({n.slots})" for n in nodes))
    env = {**os.environ, AGENTS_ENV: json.dumps({n.host: n.port for n in nodes if n.port})}
    outputs = []
    try:
        with tempfile.TemporaryDirectory(prefix="benchfab-mpi-") as tmp:
            hostfile = Path(tmp) / "hostfile"
            hostfile.write_text(hostfile_text(nodes))
            for program in program_for_size:
                argv = mpirun_argv(mpirun, str(hostfile), ctx.world, program, env, os.geteuid() == 0,
                                   sys.executable)
                began = time.monotonic()
                try:
                    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, env=env, check=False)
                except subprocess.TimeoutExpired:
                    raise WorkloadError(f"mpirun did not finish {Path(program[0]).name} in {timeout_s:.0f} s") from None
                ctx.log(f"mpirun {Path(program[0]).name} {' '.join(program[1:5])}: {time.monotonic() - began:.2f} s, "
                        f"exit {done.returncode}")
                if done.returncode != 0:
                    tail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-3:] or ["no output"]
                    raise WorkloadError(f"mpirun exited with code {done.returncode}: {' | '.join(tail)[:400]}")
                outputs.append(done.stdout)
    finally:
        for channel in channels:
            try:
                channel.send({"done": True})
            except OSError:
                pass
            channel.close()
    return outputs


def serve_node(ctx: RankContext, deadline: float) -> None:
    """The first local rank of every other node: register a launch listener with rank 0 and
    serve its launcher until rank 0 says the test is over (or is gone)."""
    secret = test_secret()
    sock = _connect(ctx.addr, ctx.port, deadline)
    stop = threading.Event()
    try:
        channel = Channel.connect(sock, secret, "node", "head")
        # Listen on the address rank 0 reached us from (its route to this node), on a free port.
        listener = socket.create_server((sock.getsockname()[0], 0))
        server = threading.Thread(target=serve_launches, args=(listener, secret, stop), daemon=True)
        server.start()
        channel.send({"first_rank": ctx.rank, "slots": ctx.local_world, "port": listener.getsockname()[1]})
        ctx.log(f"nccl-tests over MPI: launch listener {listener.getsockname()[0]}:{listener.getsockname()[1]} "
                f"registered with rank 0")
        sock.settimeout(None)
        try:
            channel.recv()  # {"done"}, or the end of rank 0
        except (ChannelError, OSError) as exc:
            ctx.log(f"nccl-tests over MPI: rank 0's channel ended: {exc}")
        stop.set()
        listener.close()
        server.join(timeout=5)
    finally:
        stop.set()
        sock.close()


def _connect(addr: str, port: int, deadline: float) -> socket.socket:
    while True:
        try:
            return socket.create_connection((addr, port), timeout=FIRST_LINE_S)
        except OSError as exc:
            if time.monotonic() > deadline:
                raise WorkloadError(f"nccl-tests over MPI: rank 0 at {addr}:{port} did not answer: {exc}") from None
            time.sleep(0.2)


def run_nccl_tests_over_mpi(task: Task, ctx: RankContext, timeout_s: float) -> list[NcclTestsRun]:
    """Rank 0: every size of ``task`` through the binary under mpirun, one MPI rank per GPU."""
    binary = require_binary(task)
    programs = [nccl_tests_argv(binary, task, size, 1) for size in task.sizes]
    outputs = run_mpirun(task, ctx, programs, timeout_s)
    return [parse_size_output(binary, size, text) for size, text in zip(task.sizes, outputs, strict=True)]
