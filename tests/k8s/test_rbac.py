"""RBAC on the fake API server, through the real kubernetes client: service-account tokens,
Roles / ClusterRoles and their bindings, resourceNames, subresources, escalation prevention;
then the shipped jobs/k8s/rbac.yaml is all a real sweep and ``benchfab preflight`` need, and an
agent pod's own token reads only its run's pods."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from benchfab.backends.kubernetes import manifests as mf
from benchfab.backends.kubernetes.client import ClusterOptions, connect
from benchfab.backends.kubernetes.options import KubeOptions
from tests.fakecluster import FakeCluster, seed_nodes
from tests.helpers import ROOT
from tests.k8s.helpers import PAIRS, SPEC, assert_clean, sweep
from tests.k8s.test_preflight_and_nccl import PREFLIGHT_SPEC, seed_operator

pytestmark = [pytest.mark.k8s]

NS = "bench"
RBAC = "rbac.authorization.k8s.io"


def core(c: FakeCluster, sa: str, ns: str = NS) -> client.CoreV1Api:
    """The core API as the service account ``ns``/``sa`` (its own token, through a kubeconfig)."""
    return client.CoreV1Api(config.new_client_from_config(config_file=str(c.kubeconfig_for(ns, sa))))


def ok(call: Any, *args: Any, **kwargs: Any) -> Any:
    """A call's answer as the JSON it was (the client's models refuse the fake's sparse pods)."""
    data = call(*args, _preload_content=False, **kwargs).data
    try:
        return json.loads(data)
    except ValueError:
        return data.decode()


def names(answer: dict[str, Any]) -> list[str]:
    return [o["metadata"]["name"] for o in answer["items"]]


def refused(call: Any, *args: Any, **kwargs: Any) -> tuple[int, str]:
    """The status and Status message of a call that must fail."""
    with pytest.raises(ApiException) as err:
        call(*args, **kwargs)
    return err.value.status, json.loads(err.value.body)["message"]


def role(name: str, rules: list[dict[str, Any]], ns: str | None = NS) -> dict[str, Any]:
    kind = "Role" if ns else "ClusterRole"
    return {"apiVersion": f"{RBAC}/v1", "kind": kind, "metadata": {"name": name, **({"namespace": ns} if ns else {})},
            "rules": rules}


def binding(name: str, ref_kind: str, ref: str, subjects: list[dict[str, str]], ns: str | None = NS) -> dict[str, Any]:
    kind = "RoleBinding" if ns else "ClusterRoleBinding"
    return {"apiVersion": f"{RBAC}/v1", "kind": kind, "metadata": {"name": name, **({"namespace": ns} if ns else {})},
            "roleRef": {"apiGroup": RBAC, "kind": ref_kind, "name": ref}, "subjects": subjects}


def sa(name: str, ns: str = NS) -> dict[str, str]:
    return {"kind": "ServiceAccount", "name": name, "namespace": ns}


def user(name: str, ns: str = NS) -> str:
    return f"system:serviceaccount:{ns}:{name}"


@pytest.fixture
def pods(cluster: FakeCluster) -> Iterator[FakeCluster]:
    """Pods a and b in bench, c in another namespace (static: the kubelet leaves them alone)."""
    cluster.store.put("namespaces", {"metadata": {"name": "other"}})
    cluster.add_node("n0")
    for ns, name in ((NS, "a"), (NS, "b"), ("other", "c")):
        cluster.add_static_pod(ns, name, "n0", {"app": "x"})
    yield cluster


# -- authentication ------------------------------------------------------------------------
def test_missing_or_unknown_token_is_401_and_the_admin_kubeconfig_still_works(pods: FakeCluster) -> None:
    bad = pods.kubeconfig_for(NS, "x")
    bad.write_text(bad.read_text().replace(pods.token_for(NS, "x"), "not-a-token"))
    api = client.CoreV1Api(config.new_client_from_config(config_file=str(bad)))
    status, message = refused(api.list_namespaced_pod, NS)
    assert (status, message) == (401, "Unauthorized")
    none = client.CoreV1Api(config.new_client_from_config(config_file=str(pods.pod_kubeconfig(NS, None))))
    assert refused(none.read_namespaced_pod, "a", NS)[0] == 401
    admin = client.CoreV1Api(config.new_client_from_config(config_file=str(pods.kubeconfig)))
    assert names(ok(admin.list_pod_for_all_namespaces)) == ["a", "b", "c"]
    assert pods.token_for(NS, "x") == pods.token_for(NS, "x") != pods.token_for("other", "x")


def test_the_insecure_port_for_kubectl_takes_requests_without_credentials_only(pods: FakeCluster) -> None:
    """kubectl (client-go) sends no credentials over plain HTTP: its port serves those as the admin."""
    insecure = yaml.safe_load(pods.insecure_kubeconfig().read_text())["clusters"][0]["cluster"]["server"]
    for url, token, want in ((pods.url, None, 401), (insecure, None, 200), (insecure, "not-a-token", 401),
                             (insecure, pods.token_for(NS, "nobody"), 403)):
        request = urllib.request.Request(f"{url}/api/v1/namespaces/{NS}/pods",
                                         headers={"Authorization": f"Bearer {token}"} if token else {})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                status, body = answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            status, body = exc.code, json.loads(exc.read())
        assert status == want, (url, token, body)
        assert body["kind"] == ("PodList" if want == 200 else "Status")


# -- authorization -------------------------------------------------------------------------
def test_a_service_account_without_bindings_is_refused_in_kube_apiservers_words(pods: FakeCluster) -> None:
    api = core(pods, "nobody")
    status, message = refused(api.read_namespaced_pod, "a", NS)
    assert status == 403
    assert message == (f'pods "a" is forbidden: User "{user("nobody")}" cannot get resource "pods" '
                       f'in API group "" in the namespace "{NS}"')
    assert refused(api.list_namespaced_pod, NS)[1] == (
        f'pods is forbidden: User "{user("nobody")}" cannot list resource "pods" in API group "" in the namespace "{NS}"')
    assert refused(api.list_pod_for_all_namespaces)[1].endswith('cannot list resource "pods" in API group "" '
                                                                 "at the cluster scope")
    assert pods.denied and all(who == user("nobody") for who, _ in pods.denied)


def test_resource_names_allow_get_and_a_list_or_watch_by_that_name_only(pods: FakeCluster) -> None:
    # The verbs resourceNames cannot restrict are listed too: they must still be refused.
    pods.apply([role("one-pod", [{"apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"],
                                  "verbs": ["get", "list", "watch", "create", "deletecollection"]}]),
                binding("one-pod", "Role", "one-pod", [sa("agent")])])
    api = core(pods, "agent")
    assert ok(api.read_namespaced_pod, "a", NS)["metadata"]["name"] == "a"
    assert names(ok(api.list_namespaced_pod, NS, field_selector="metadata.name=a")) == ["a"]
    watched = api.list_namespaced_pod(NS, field_selector="metadata.name=a", watch=True, timeout_seconds=1,
                                      _preload_content=False)
    assert json.loads(watched.data.splitlines()[0])["object"]["metadata"]["name"] == "a"
    assert refused(api.read_namespaced_pod, "b", NS)[0] == 403
    status, message = refused(api.list_namespaced_pod, NS, field_selector="metadata.name=b")
    assert status == 403 and message.startswith(f'pods "b" is forbidden: User "{user("agent")}" cannot list')
    assert refused(api.list_namespaced_pod, NS)[1].startswith("pods is forbidden:")
    assert "cannot watch" in refused(api.list_namespaced_pod, NS, watch=True, timeout_seconds=1)[1]
    assert "cannot list" in refused(api.list_namespaced_pod, NS, field_selector="metadata.name!=a")[1]
    body = {"metadata": {"name": "a2"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    assert "cannot create resource" in refused(api.create_namespaced_pod, NS, body)[1]
    assert "cannot deletecollection" in refused(api.delete_collection_namespaced_pod, NS,
                                                field_selector="metadata.name=a")[1]
    assert "cannot patch" in refused(api.patch_namespaced_pod, "a", NS, {"metadata": {"labels": {"x": "y"}}})[1]
    assert pods.store.get("pods", NS, "a") is not None


def test_a_subresource_needs_its_own_rule(pods: FakeCluster) -> None:
    pods.log_path(NS, "a").parent.mkdir(parents=True, exist_ok=True)
    pods.log_path(NS, "a").write_text("hello\n")
    pods.apply([role("reader", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]),
                binding("reader", "Role", "reader", [sa("reader")])])
    api = core(pods, "reader")
    assert ok(api.read_namespaced_pod, "a", NS)["metadata"]["name"] == "a"
    status, message = refused(api.read_namespaced_pod_log, "a", NS)
    assert status == 403 and message == (f'pods "a" is forbidden: User "{user("reader")}" cannot get resource '
                                         f'"pods/log" in API group "" in the namespace "{NS}"')
    pods.apply([role("logs", [{"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}]),
                binding("logs", "Role", "logs", [sa("reader")])])
    assert ok(api.read_namespaced_pod_log, "a", NS) == "hello\n"


def test_a_cluster_role_binding_grants_in_every_namespace_a_role_binding_in_its_own(pods: FakeCluster) -> None:
    pods.apply([role("pod-reader", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}], ns=None),
                binding("here", "ClusterRole", "pod-reader", [sa("local")]),
                binding("everywhere", "ClusterRole", "pod-reader", [sa("global")], ns=None)])
    everywhere = core(pods, "global")
    assert ok(everywhere.read_namespaced_pod, "c", "other")["metadata"]["name"] == "c"
    assert len(names(ok(everywhere.list_pod_for_all_namespaces))) == 3
    here = core(pods, "local")
    assert names(ok(here.list_namespaced_pod, NS)) == ["a", "b"]
    assert refused(here.read_namespaced_pod, "c", "other")[1].endswith('in the namespace "other"')
    assert refused(here.list_pod_for_all_namespaces)[1].endswith("at the cluster scope")


def test_group_subjects(pods: FakeCluster) -> None:
    pods.apply([role("pod-reader", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get"]}]),
                binding("all-sas-here", "Role", "pod-reader",
                        [{"kind": "Group", "name": f"system:serviceaccounts:{NS}", "apiGroup": RBAC}])])
    assert ok(core(pods, "anyone").read_namespaced_pod, "a", NS)["metadata"]["name"] == "a"
    assert refused(core(pods, "anyone", ns="other").read_namespaced_pod, "a", NS)[0] == 403


def test_a_custom_resource_that_is_not_installed_is_403_before_404(pods: FakeCluster) -> None:
    """kube-apiserver authorizes before it looks the resource up: without the right, a missing CRD is 403."""
    custom = client.CustomObjectsApi(config.new_client_from_config(config_file=str(pods.kubeconfig_for(NS, "inv"))))
    group, version, plural = "sriovnetwork.openshift.io", "v1", "sriovnetworknodepolicies"
    status, message = refused(custom.list_cluster_custom_object, group, version, plural)
    assert status == 403 and message.startswith(f'{plural}.{group} is forbidden: User "{user("inv")}" cannot list '
                                                f'resource "{plural}" in API group "{group}" at the cluster scope')
    pods.apply([role("sriov", [{"apiGroups": [group], "resources": [plural], "verbs": ["list"]}], ns=None),
                binding("sriov", "ClusterRole", "sriov", [sa("inv")], ns=None)])
    assert refused(custom.list_cluster_custom_object, group, version, plural)[0] == 404


def test_roles_and_bindings_cannot_grant_more_than_the_writer_holds(pods: FakeCluster) -> None:
    pods.apply([role("granter", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
                                 {"apiGroups": [RBAC], "resources": ["roles", "rolebindings"], "verbs": ["create"]}]),
                binding("granter", "Role", "granter", [sa("granter")]),
                role("deleter", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]}])])
    rbac = client.RbacAuthorizationV1Api(config.new_client_from_config(config_file=str(pods.kubeconfig_for(NS, "granter"))))
    narrower = role("named-get", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"], "resourceNames": ["a"]}])
    ok(rbac.create_namespaced_role, NS, narrower)
    status, message = refused(rbac.create_namespaced_role, NS, role("more", [
        {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "delete"]}]))
    assert status == 403
    assert message.startswith(f'roles.{RBAC} "more" is forbidden: user "{user("granter")}" (groups=[')
    assert "is attempting to grant RBAC permissions not currently held" in message
    assert '{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}' in message
    assert '{APIGroups:[""], Resources:["pods/log"], Verbs:["get"]}' in message
    assert pods.store.get("roles", NS, "more") is None
    # Binding a role: allowed when its rules are held, refused when not, unless the writer may `bind` it.
    ok(rbac.create_namespaced_role_binding, NS, binding("b1", "Role", "named-get", [sa("someone")]))
    assert "not currently held" in refused(rbac.create_namespaced_role_binding, NS,
                                           binding("b2", "Role", "deleter", [sa("someone")]))[1]
    pods.apply([role("binder", [{"apiGroups": [RBAC], "resources": ["roles"], "verbs": ["bind"],
                                 "resourceNames": ["deleter"]}]),
                binding("binder", "Role", "binder", [sa("granter")])])
    ok(rbac.create_namespaced_role_binding, NS, binding("b2", "Role", "deleter", [sa("someone")]))
    assert ok(core(pods, "someone").delete_namespaced_pod, "b", NS)["metadata"]["name"] == "b"


# -- the shipped RBAC ----------------------------------------------------------------------
def shipped_rbac(c: FakeCluster, ns: str = NS) -> Path:
    """jobs/k8s/rbac.yaml, its namespace rewritten to ``ns``, applied; the controller's kubeconfig."""
    docs = [d for d in yaml.safe_load_all((ROOT / "jobs/k8s/rbac.yaml").read_text()) if d]
    text = json.dumps(docs).replace('"gpu-bench"', json.dumps(ns))
    c.apply([d for d in json.loads(text) if d["kind"] != "Namespace"])
    return c.kubeconfig_for(ns, "benchfab-controller")


@pytest.mark.slow
def test_the_shipped_rbac_is_all_preflight_plan_render_and_a_sweep_need(cluster: FakeCluster, tmp_path: Path, cli,  # type: ignore[no-untyped-def]
                                                             write_spec) -> None:
    controller = shipped_rbac(cluster)
    nodes = seed_nodes(cluster, 3)
    seed_operator(cluster, nodes)
    cluster.add_nad(NS, "roce-net", None)
    cluster.put_custom("nicclusterpolicies", {"apiVersion": "mellanox.com/v1alpha1", "kind": "NicClusterPolicy",
                                              "metadata": {"name": "nic-cluster-policy"}, "status": {"state": "ready"}})
    admin_requests = len(cluster.identities)
    # The preflight of a spec with an SR-IOV profile also reads the SR-IOV operator's objects.
    proc = cli("preflight", str(write_spec(PREFLIGHT_SPEC)), "--kubeconfig", str(controller))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert cluster.denied == []

    text = SPEC + PAIRS
    for command in ("plan", "render"):  # the inventory, read the same way
        proc = cli(command, str(write_spec(text, "sweep.yaml")), "--kubeconfig", str(controller))
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert cluster.denied == []
    result, _, out = sweep(cluster, text, tmp_path / "res", kubeconfig=controller)
    assert result.counts == {"ok": 3}, out
    assert cluster.denied == []  # not even a refusal the backend got past
    assert_clean(cluster)
    users = {who for who, _, _ in cluster.identities[admin_requests:]}
    # The agents ran as the run's own account, which the controller made and removed.
    assert users == {user("benchfab-controller"), user(mf.agent_role_name("r"))}
    # Each agent read its own pod with its own account's token, by name, and its run's round
    # ConfigMaps by the run's label; nothing else.
    agent = [path for who, _, path in cluster.identities if who == user(mf.agent_role_name("r"))]
    pods_read = [p for p in agent if p.startswith("/api/v1/namespaces/bench/pods?")]
    rounds_read = [p for p in agent if p.startswith("/api/v1/namespaces/bench/configmaps?")]
    assert pods_read and all("fieldSelector=metadata.name%3Dbf-" in p for p in pods_read), pods_read[:5]
    assert rounds_read and all("labelSelector=benchfab.io/run%3Dr" in p for p in rounds_read), rounds_read[:5]
    assert len(pods_read) + len(rounds_read) == len(agent), agent


def test_an_agent_token_reads_only_its_runs_pods(pods: FakeCluster) -> None:
    """The run's access made as the controller makes it, through the shipped rights; then the
    agent account's token, as the kubelet hands it to the run's pods. Two runs at the same
    time each have their own account, so neither run's agents can read the other's pods."""
    controller = shipped_rbac(pods)
    kube = connect(ClusterOptions(kubeconfig=str(controller)))
    for run, pod in (("run-1", "a"), ("run-2", "b")):
        for doc in mf.agent_access(run, NS, [pod], KubeOptions()):
            kube.apply_role(doc) if doc["kind"] == "Role" else kube.create(doc["kind"], doc)
    assert pods.denied == []
    account = mf.agent_role_name("run-1")
    agent = client.CoreV1Api(config.new_client_from_config(config_file=str(pods.pod_kubeconfig(NS, account))))
    assert ok(agent.read_namespaced_pod, "a", NS)["metadata"]["name"] == "a"
    assert names(ok(agent.list_namespaced_pod, NS, field_selector="metadata.name=a")) == ["a"]
    for call, args in ((agent.read_namespaced_pod, ("b", NS)), (agent.read_namespaced_pod, ("c", "other")),
                       (agent.list_namespaced_pod, (NS,)), (agent.read_namespaced_pod_log, ("a", NS)),
                       (agent.patch_namespaced_pod, ("a", NS, {"metadata": {"labels": {"x": "y"}}})),
                       (agent.delete_namespaced_pod, ("a", NS)), (agent.list_node, ())):
        status, message = refused(call, *args)
        assert status == 403 and f'User "{user(account)}"' in message, message
    # A named account (kubernetes.service_account) is the spec's choice, shared by every run
    # that names it: bound to both runs' Roles, it reads both runs' pods (docs/KUBERNETES.md).
    shared = KubeOptions(service_account="team-agent")
    for run, pod in (("run-3", "a"), ("run-4", "b")):
        assert [d["kind"] for d in mf.agent_access(run, NS, [pod], shared)] == ["Role", "RoleBinding"]
        for doc in mf.agent_access(run, NS, [pod], shared):
            kube.create(doc["kind"], doc)
    team = client.CoreV1Api(config.new_client_from_config(config_file=str(pods.pod_kubeconfig(NS, "team-agent"))))
    assert ok(team.read_namespaced_pod, "b", NS)["metadata"]["name"] == "b"
    # With each run's clean-up its access (and its own account) is gone too.
    for run in ("run-1", "run-2", "run-3", "run-4"):
        assert kube.delete_run(mf.run_selector(run)) == {}
    assert pods.store.get("serviceaccounts", NS, account) is None
    assert refused(agent.read_namespaced_pod, "a", NS)[0] == 403
    assert refused(team.read_namespaced_pod, "b", NS)[0] == 403


def test_the_shipped_rbac_lets_the_controller_name_what_a_failed_clean_up_left(cluster: FakeCluster) -> None:
    """When a run's clean-up fails, the controller lists what is left of it (pods, services,
    roles, rolebindings) and prints a ``kubectl delete -l`` line, which lists them too."""
    kube = connect(ClusterOptions(kubeconfig=str(shipped_rbac(cluster))))
    kube.create("Service", mf.service_manifest("run-1", NS))
    account, role_, binding_ = mf.agent_access("run-1", NS, ["bf-x-0"], KubeOptions())
    kube.create("ServiceAccount", account)
    kube.apply_role(role_)
    kube.create("RoleBinding", binding_)
    name = mf.agent_role_name("run-1")
    assert sorted(kube.run_objects(mf.run_selector("run-1"))) == [
        f"role/{name}", f"rolebinding/{name}", f"service/{mf.service_name('run-1')}", f"serviceaccount/{name}"]
    assert cluster.denied == []


@pytest.mark.slow  # a sweep through the CLI: ~30 s
def test_a_named_agent_account_must_exist(cluster: FakeCluster, tmp_path: Path, cli,  # type: ignore[no-untyped-def]
                                          write_spec) -> None:
    """kubernetes.service_account names an account the run does not make: preflight says
    whether it exists, and a sweep without it stops before any pod with one line and the fix
    (the API server would refuse every pod: the ServiceAccount admission check)."""
    seed_nodes(cluster, 2)
    cluster.add_nad(NS, "rdma-net", None)
    text = (SPEC + PAIRS).replace("kubernetes: {start_timeout: 20s}",
                                  "kubernetes: {start_timeout: 20s, service_account: team-agent}")
    spec = write_spec(text)
    fix = "kubectl create serviceaccount team-agent -n bench, or drop kubernetes.service_account"

    def account_check() -> dict[str, str]:
        proc = cli("preflight", str(spec), "--kubeconfig", str(cluster.kubeconfig), "-o", "json")
        (check,) = [c for c in json.loads(proc.stdout) if c["name"] == "agent account"]
        return dict(check)

    def sweep(run_id: str) -> Any:
        return cli("sweep", str(spec), "--kubeconfig", str(cluster.kubeconfig), "--results", str(tmp_path / "res"),
                   "--run-id", run_id, "--no-progress")

    check = account_check()
    assert check["status"] == "fail" and check["detail"].startswith("service account bench/team-agent")
    assert check["fix"].startswith(fix)
    proc = sweep("r")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "service account bench/team-agent (kubernetes.service_account) does not exist" in proc.stderr, proc.stderr
    assert fix in proc.stderr
    meta = json.loads((tmp_path / "res" / "r" / "run.json").read_text())
    assert meta["status"] == "failed" and fix in meta["reason"]  # the run says why it stopped
    assert cluster.objects("pods", "app.kubernetes.io/name=benchfab") == []
    assert_clean(cluster)
    # Made, the account is used as named: no account of the run's own.
    cluster.store.put("serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
                                          "metadata": {"name": "team-agent", "namespace": NS}})
    check = account_check()
    assert check["status"] == "pass" and check["detail"].startswith("team-agent")
    proc = sweep("r2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {who for who, _, _ in cluster.identities} >= {user("team-agent")}
    assert cluster.store.get("serviceaccounts", NS, "team-agent") is not None  # not the run's to delete
    assert_clean(cluster)
