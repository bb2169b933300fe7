"""``python -m benchfab.backends.kubernetes.agent``: the long-lived process in every rank pod.

One agent pod lives on each (node, slot) for a profile's whole sweep, so a
sweep pays the pod start-up (scheduling, image, CNI, device plugin) once, not
once per round. The controller hands out a whole round with one write: the
round's ConfigMap(s) (handout.py) hold each test's task once and each pod's
entry {seq, task, env, local_env} under the pod's name. The agent watches its own
pod (plain list + watch by name) and its run's ConfigMaps (by label), picks its
entry, and hands the test to its rank worker with the test's
env (RANK, WORLD_SIZE, MASTER_ADDR, NCCL_*...), one per local rank when the pod
holds a node's GPUs (``local_env``: RANK and LOCAL_RANK of each). The rank workers
(``python -m benchfab.worker --serve``) stay alive across the run's tests as long as
that is safe (rank_workers.py says when it is not). The agent prints the workers' records
to its own stdout (the pod log) tagged with ``seq`` and a running counter
``n`` (so a reconnecting log reader can drop lines it already saw). Other
output lines pass through unchanged as the test's log; NCCL INFO lines are
parsed into the transport really used, reported in the final ``exit`` record.
``benchfab.io/cancel`` = seq stops that test's worker (controller timeout).

Start-up is reported stage by stage (``{"type": "agent", "event": "stage",
"stage": NAME}`` as each begins, then ``ready``) on the same record channel, so
the controller can wait as long as start-up makes progress and, when it stalls,
say where: a loaded node can take minutes to import pydantic and the
kubernetes client, while a pod that cannot list itself never gets anywhere.
Only light modules are imported before the first stage record.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from ...task import format_record  # json only: cheap before the first stage record

if TYPE_CHECKING:
    from .watch import Cache

# Start-up stages in order. Each record names the stage being entered, so the last
# one the controller saw is the one the agent is stuck in. STAGE_PROCESS is the
# controller's own name for "container running, nothing printed yet".
STAGE_PROCESS = "starting the agent process"
STAGE_IMPORTS = "importing benchfab modules"  # pydantic, yaml, benchfab.spec: slow on loaded or emulated CPUs
STAGE_CONNECT = "connecting to the API server"  # imports the kubernetes client, loads the service account
STAGE_DEVICES = "checking RDMA devices"  # loads benchfab._native, reads /sys/class/infiniband
STAGE_WATCH = "watching its pod"  # list + watch of its own pod and its run's ConfigMaps: the task channel

_out = threading.Lock()
_counter = 0


def emit(record: dict[str, Any]) -> None:
    global _counter
    with _out:
        _counter += 1
        print(format_record({**record, "n": _counter}), flush=True)


def say(line: str) -> None:
    with _out:
        print(line, flush=True)


def stage(name: str, **info: Any) -> None:
    emit({"type": "agent", "event": "stage", "stage": name, **info})


def devices() -> dict[str, Any]:
    """What the worker will need, checked once at start-up: the native extension and
    the RDMA devices this pod sees (reported in the ready record and the pod log)."""
    from ...errors import BenchfabError
    from ...metadata import node_software
    from ...native import native_status
    from ...rdma.discovery import discover_sysfs

    info: dict[str, Any] = {"native": native_status(), "software": node_software()}
    try:
        info["rdma_devices"] = [d.name for d in discover_sysfs()]
    except (OSError, ValueError, BenchfabError) as exc:  # an odd sysfs must not stop the agent
        info["rdma_devices_error"] = str(exc)
    return info


def main() -> int:
    pod, namespace = os.environ.get("POD_NAME"), os.environ.get("POD_NAMESPACE")
    if not pod or not namespace:
        print("benchfab.backends.kubernetes.agent: POD_NAME and POD_NAMESPACE must be set (downward API)",
              file=sys.stderr)
        return 2
    stage(STAGE_IMPORTS, pid=os.getpid(), python=sys.version.split()[0])
    from ...rdma.oob import SECRET_ENV  # noqa: F401 - for _serve: loaded now, in STAGE_IMPORTS
    from .client import ClusterOptions, connect
    from .handout import pick  # noqa: F401
    from .manifests import ANN_CANCEL, LABEL_RUN  # noqa: F401 - for _serve: loaded now
    from .nccl import parse_nccl_log  # noqa: F401 - imported now so the first test does not pay for it
    from .rank_workers import RankWorkers  # noqa: F401 - for _serve
    from .watch import Cache

    stage(STAGE_CONNECT)
    kube = connect(ClusterOptions(namespace=namespace))
    stage(STAGE_DEVICES)
    found = devices()
    stage(STAGE_WATCH)
    # Handlers only from here: during start-up there is no worker to clean up, and
    # SIGTERM's default (exit now) beats finishing a slow import first.
    stop = threading.Event()

    def on_term(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    cond = threading.Condition()  # one for both watches: the agent wakes on either
    cache = Cache(kube, namespace, field_selector=f"metadata.name={pod}", cond=cond)
    cache.start()
    tasks: Cache | None = None
    # Ready means the task channel works: the first list of our own pod answered, then the
    # first list of our run's ConfigMaps (selected by our pod's run label). Until then,
    # repeat the stage with the latest error (the controller shows it; the same stage
    # name does not count as progress).
    reported: str | None = None
    while tasks is None or not tasks.synced.is_set():
        if tasks is None and cache.synced.is_set():
            me = cache.get(pod)
            if me is None:
                cache.stop()
                return 0  # our pod is gone already
            run = (me.get("metadata", {}).get("labels") or {}).get(LABEL_RUN, "")
            tasks = Cache(kube, namespace, label_selector=f"{LABEL_RUN}={run}", resource="configmaps", cond=cond)
            tasks.start()
        if stop.wait(0.2):
            cache.stop()
            if tasks is not None:
                tasks.stop()
            return 0
        error = cache.error or (tasks.error if tasks is not None else None)
        if error and error != reported:
            reported = error
            stage(STAGE_WATCH, detail=f"last error: {error}")
    emit({"type": "agent", "event": "ready", "pod": pod, **found})
    _serve(cache, tasks, pod, stop)
    return 0


def _serve(cache: Cache, tasks: Cache, pod: str, stop: threading.Event) -> None:
    """Run each new test of ours in the round ConfigMaps, until our pod is gone or we are stopped."""
    from ...rdma.oob import SECRET_ENV
    from .handout import ANN_RUN_SECRET, pick, test_secret
    from .manifests import ANN_CANCEL
    from .rank_workers import RankWorkers

    workers = RankWorkers(emit, say)
    last_seq = 0
    seen = -1
    try:
        while not stop.is_set():
            cache.wait(lambda: cache.version + tasks.version != seen, 0.5)  # noqa: B023 - before `seen` changes
            seen = cache.version + tasks.version
            if not cache.synced.is_set():
                continue
            obj = cache.get(pod)
            if obj is None:
                break  # our pod is gone: nothing left to do
            ann = obj.get("metadata", {}).get("annotations") or {}
            cancel = int(ann.get(ANN_CANCEL) or 0)
            running = workers.running_seq()
            if running and running <= cancel:
                say(f"benchfab agent: test {running} cancelled by the controller")
                workers.stop_running()
            with tasks.cond:
                rounds = list(tasks.objects.values())
            try:
                found = pick(rounds, pod, max(last_seq, cancel))
            except (ValueError, KeyError, TypeError):
                say("benchfab agent: unreadable round ConfigMap entry ignored")
                continue
            if found is None:
                continue
            job, task_json = found
            seq = int(job["seq"])
            workers.stop_running()  # a newer test replaces a stale one
            last_seq = seq
            env = {str(k): str(v) for k, v in dict(job.get("env") or {}).items()}
            if ann.get(ANN_RUN_SECRET):  # without it the worker says that it has no secret
                env[SECRET_ENV] = test_secret(ann[ANN_RUN_SECRET], seq)
            per_rank = [{str(k): str(v) for k, v in dict(x).items()} for x in job.get("local_env") or [{}]]
            workers.run(seq, task_json, env, per_rank)
    finally:
        workers.close()
        cache.stop()
        tasks.stop()


if __name__ == "__main__":
    sys.exit(main())
