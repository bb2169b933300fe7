"""GPU health on the fake cluster, end to end: each agent pod's first rank reads its node's
DCGM exporter (at the node's address, from the downward API's status.hostIP), the run stores
it, the second pass makes a ``bad-gpu`` verdict of exactly the node whose exporter reports a
failing GPU, and ``diagnose --apply`` labels and taints that node. The exporters are real
HTTP servers answering with the hand-written fixtures of tests/data/dcgm/."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchfab.backends.kubernetes.client import ClusterOptions, connect
from benchfab.backends.kubernetes.preflight import checks
from benchfab.diagnosis import load_diagnosis
from tests.fakecluster import FakeCluster, seed_nodes
from tests.k8s.helpers import SPEC, sweep
from tests.test_gpu_health import fixture

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

FAULTY_NODE_ADDRESS = "127.0.0.2"
# The fabric rules off: on two shared cores the fake cluster's tcp figures are the scheduler's
# (tests/sim judges the fabric on shaped links); this test is about the GPUs.
FABRIC_RULES_OFF = "second_pass: {below_median: null, node_below_median: null, above_median: null, max_retrans: null}\n"


def serve(address: str, port: int, text: str) -> http.server.ThreadingHTTPServer:
    class Metrics(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = text.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((address, port), Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def exporters() -> Iterator[int]:
    """A healthy exporter on 127.0.0.1 and a faulty one on 127.0.0.2, on the same port."""
    healthy = serve("127.0.0.1", 0, fixture("exporter-healthy.txt"))
    port = healthy.server_address[1]
    faulty = serve(FAULTY_NODE_ADDRESS, port, fixture("exporter-faulty.txt"))
    try:
        yield port
    finally:
        for server in (healthy, faulty):
            server.shutdown()
            server.server_close()


def test_a_failing_gpu_is_a_bad_gpu_verdict_on_its_node_only(cluster: FakeCluster, tmp_path: Path,
                                                             exporters: int) -> None:
    nodes = seed_nodes(cluster, 3)
    cluster.patch_node(nodes[1], {"status": {"addresses": [{"type": "InternalIP", "address": FAULTY_NODE_ADDRESS}]}})
    text = (SPEC.replace("device: cpu", "device: auto").replace(
        "kubernetes: {start_timeout: 20s}",
        "kubernetes: {start_timeout: 20s, env: {DCGM_EXPORTER_URL: 'http://{host_ip}:" + str(exporters) + "/metrics'}}")
        .replace("tests:\n", FABRIC_RULES_OFF + "tests:\n")
        + "  - name: pairs\n    placement: {pattern: all-pairs, second_pass: true}\n")
    result, _, out = sweep(cluster, text, tmp_path / "res")
    found = load_diagnosis(result.path)
    assert found is not None, out
    assert [(f.kind, f.nodes) for f in found.verdicts] == [("bad-gpu", (nodes[1],))], out
    assert found.verdicts[0].why.startswith("GPU 3: XID 79; GPU 5: row remapping failed"), found.verdicts[0].why
    assert sorted(found.gpu_health) == sorted(nodes)
    assert "# GPU health checked on 3 node(s) (dcgm-exporter)" in out
    assert result.exit_code() == 1  # a verdict names a fault


def test_preflight_says_where_gpu_health_can_be_checked(cluster: FakeCluster) -> None:
    nodes = seed_nodes(cluster, 3)
    cluster.store.put("namespaces", {"metadata": {"name": "gpu-operator"}})
    cluster.add_static_pod("gpu-operator", "nvidia-dcgm-exporter-x1", nodes[0], {"app": "nvidia-dcgm-exporter"})
    cluster.add_static_pod("gpu-operator", "nvidia-dcgm-exporter-x2", nodes[1], {"app": "nvidia-dcgm-exporter"},
                           ready=False)
    found = {c.scope: c for c in checks(connect(ClusterOptions(kubeconfig=str(cluster.kubeconfig))), None)
             if c.name == "GPU health (DCGM)"}
    assert {n: c.status for n, c in found.items()} == {nodes[0]: "pass", nodes[1]: "warn", nodes[2]: "warn"}
    assert "nvidia-dcgm-exporter-x2 not Ready" in found[nodes[1]].detail
    assert found[nodes[2]].detail.startswith("no DCGM exporter pod: GPU health not checked here")
