"""Talking to the API server: configuration, retries, watch caches, log streams.

Built on the official ``kubernetes`` client (its configuration loading, auth and
HTTP transport), but every call asks for the raw response and parses JSON into
plain dicts: the code below works with the same shapes that ``kubectl get -o
json`` shows, and large lists skip model construction.

Robustness, in one place:
- ``Kube.call`` retries 429 (honouring Retry-After), 5xx and dropped
  connections with exponential backoff; a create that is retried after its
  response was lost gets 409 and is treated as done (names are deterministic,
  so there are never duplicate pods).
- ``watch.Cache`` is a small informer: list, then watch from the list's
  resourceVersion; a 410 Gone (history compacted) relists, other failures
  re-watch from the last version seen.
- ``LogStream`` follows one pod's log and reconnects if the stream breaks.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ...errors import BackendError
from .api_errors import NotFound, Unreachable, api_error

RETRY_STATUS = (429, 500, 502, 503, 504)


@dataclass(frozen=True)
class ClusterOptions:
    """Where the cluster is, like kubectl's --kubeconfig / --context / --namespace."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None


SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_KUBECONFIG = "~/.kube/config"
OFFLINE_HINT = "benchfab render and plan also work offline: --nodes N or --nodes a,b,..."


def _in_cluster(options: ClusterOptions) -> bool:
    """Inside a pod with a service account, and nothing on the command line or in $KUBECONFIG says otherwise."""
    return (not options.kubeconfig and not options.context and not os.environ.get("KUBECONFIG")
            and "KUBERNETES_SERVICE_HOST" in os.environ and os.path.exists(f"{SERVICE_ACCOUNT_DIR}/token"))


def kubeconfig_paths(options: ClusterOptions) -> tuple[str, list[str]]:
    """Where the kubeconfig comes from, like kubectl: --kubeconfig, else $KUBECONFIG (a path list), else ~/.kube/config.

    Returns (how it was named, the expanded paths).
    """
    if options.kubeconfig:
        return f"--kubeconfig {options.kubeconfig}", [os.path.expanduser(options.kubeconfig)]
    env = os.environ.get("KUBECONFIG")
    if env:
        return f"KUBECONFIG={env}", [os.path.expanduser(p) for p in env.split(os.pathsep) if p]
    return DEFAULT_KUBECONFIG, [os.path.expanduser(DEFAULT_KUBECONFIG)]


def cluster_configured(options: ClusterOptions) -> bool:
    """Whether the user has pointed benchfab at a cluster at all.

    True with --kubeconfig or --context, a non-empty $KUBECONFIG (even one naming a
    missing file: that is an error to report, not a reason to work offline), an
    existing ~/.kube/config, or a service account inside a pod. False only when
    there is no configuration anywhere: then ``render`` and ``plan`` work offline.
    """
    if options.kubeconfig or options.context or os.environ.get("KUBECONFIG") or _in_cluster(options):
        return True
    return os.path.exists(os.path.expanduser(DEFAULT_KUBECONFIG))


def _missing_config_error(options: ClusterOptions, named: str, paths: list[str]) -> BackendError:
    if options.kubeconfig:
        return BackendError(f"cannot load Kubernetes configuration: --kubeconfig {options.kubeconfig} does not exist",
                            hint="give the path of an existing kubeconfig, or leave --kubeconfig out to use "
                                 "$KUBECONFIG or ~/.kube/config")
    if os.environ.get("KUBECONFIG"):
        return BackendError(f"cannot load Kubernetes configuration: {named} names no existing file",
                            hint="point KUBECONFIG at your kubeconfig (or unset it to use ~/.kube/config), "
                                 f"or pass --kubeconfig FILE; {OFFLINE_HINT}")
    context = f" (for --context {options.context})" if options.context else ""
    return BackendError(
        f"cannot load Kubernetes configuration{context}: none found; looked at $KUBECONFIG (unset), "
        f"{DEFAULT_KUBECONFIG} ({paths[0]}: missing) and an in-cluster service account "
        f"(not in a pod: KUBERNETES_SERVICE_HOST unset or no {SERVICE_ACCOUNT_DIR}/token)",
        hint=f"pass --kubeconfig FILE and --context NAME, set KUBECONFIG, or copy the cluster's kubeconfig to "
             f"{DEFAULT_KUBECONFIG}; {OFFLINE_HINT}")


def _check_kubeconfig_files(paths: list[str]) -> None:
    """A malformed kubeconfig is named with what is wrong, instead of a YAML traceback."""
    import yaml

    for path in paths:
        if not os.path.exists(path):
            continue
        try:
            with open(path, encoding="utf-8") as f:
                data = yaml.safe_load(f)
        except OSError as exc:
            raise BackendError(f"cannot read the kubeconfig {path}: {exc.strerror or exc}",
                               hint="check the file's permissions") from None
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else path
            what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise BackendError(f"the kubeconfig {where} is malformed: not valid YAML ({what})",
                               hint="fix or regenerate it (e.g. your provider's get-credentials command), "
                                    "or pass --kubeconfig FILE") from None
        if data is None:
            continue  # an empty file: kubectl ignores it too; the loader says so if nothing else is left
        if not isinstance(data, dict):
            raise BackendError(f"the kubeconfig {path} is malformed: not a kubeconfig "
                               f"(want a mapping with clusters, contexts and users; got {type(data).__name__})",
                               hint="fix or regenerate it, or pass --kubeconfig FILE") from None


def connect(options: ClusterOptions, spec_namespace: str | None = None) -> Kube:
    """A Kube for the given kubeconfig/context, or the in-cluster service account."""
    try:
        from kubernetes import client
        from kubernetes import config as _config
        from kubernetes.config.config_exception import ConfigException
    except ImportError as exc:  # pragma: no cover - a dependency
        raise BackendError(f"the kubernetes client is not installed: {exc}", hint="pip install kubernetes") from None
    config: Any = _config  # untyped module
    cfg = client.Configuration()
    namespace = options.namespace or spec_namespace
    in_cluster = _in_cluster(options)
    named, paths = kubeconfig_paths(options)
    if not in_cluster:
        if not any(os.path.exists(p) for p in paths):
            raise _missing_config_error(options, named, paths)
        _check_kubeconfig_files(paths)
    config_file = os.pathsep.join(paths)
    try:
        if in_cluster:
            config.load_incluster_config(client_configuration=cfg)
            if namespace is None:
                try:
                    with open(f"{SERVICE_ACCOUNT_DIR}/namespace") as f:
                        namespace = f.read().strip()
                except OSError:
                    pass
        else:
            config.load_kube_config(config_file=config_file, context=options.context, client_configuration=cfg)
            if namespace is None:
                try:
                    _, active = config.list_kube_config_contexts(config_file=config_file)
                    ctx = next((c for c in _ if c["name"] == options.context), active) if options.context else active
                    namespace = (ctx or {}).get("context", {}).get("namespace")
                except (ConfigException, OSError, TypeError, KeyError):
                    pass
    except (ConfigException, OSError, TypeError, ValueError, AttributeError) as exc:
        where = "the in-cluster service account" if in_cluster else named
        raise BackendError(f"cannot load Kubernetes configuration from {where}: {str(exc).splitlines()[0]}",
                           hint="pass --kubeconfig FILE / --context NAME (kubectl config get-contexts lists them), "
                                "or run inside a pod with a service account") from None
    # Our own retries handle dropped connections (see Kube.call); urllib3's would
    # resend POSTs blindly. A large pool: one watch plus one log stream per pod.
    cfg.retries = 0
    cfg.connection_pool_maxsize = 256
    return Kube(client.ApiClient(cfg), namespace or "default")


@dataclass(frozen=True)
class RunKind:
    """A kind of object a run creates: how kubectl names it, how to list and delete it by label."""

    plural: str
    singular: str
    list: Callable[..., Any]
    delete_collection: Callable[..., Any] | None  # None: list, then delete each with delete_one
    delete_one: Callable[..., Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)  # extra arguments of the collection delete


class Kube:
    """Thin, retrying wrapper over CoreV1Api / CustomObjectsApi returning dicts."""

    def __init__(self, api_client: Any, namespace: str, attempts: int = 6, backoff_s: float = 0.2) -> None:
        from kubernetes import client

        self.api_client = api_client
        self.namespace = namespace
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.rbac = client.RbacAuthorizationV1Api(api_client)
        self.networking = client.NetworkingV1Api(api_client)
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.retries = 0  # how many calls were retried (reported in tests)

    # -- the one place that talks HTTP -------------------------------------------------
    def call(self, what: str, fn: Callable[..., Any], *args: Any, ok_conflict: bool = False,
             ok_missing: bool = False, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError as Urllib3Error

        kwargs["_preload_content"] = False
        kwargs.setdefault("_request_timeout", (10, 60))
        delay = self.backoff_s
        for attempt in range(self.attempts):
            try:
                resp = fn(*args, **kwargs)
                data = resp.data
                return json.loads(data) if data else {}
            except ApiException as exc:
                if exc.status == 409 and ok_conflict:
                    return None
                if exc.status == 404 and ok_missing:
                    return None
                if exc.status in RETRY_STATUS and attempt + 1 < self.attempts:
                    self.retries += 1
                    time.sleep(_retry_after(exc) or delay)
                    delay = min(delay * 2, 5.0)
                    continue
                raise api_error(what, exc) from exc
            except (Urllib3Error, ConnectionError, OSError, json.JSONDecodeError) as exc:
                if attempt + 1 < self.attempts:
                    self.retries += 1
                    time.sleep(delay * (1 + random.random()))
                    delay = min(delay * 2, 5.0)
                    continue
                raise Unreachable(f"{what}: cannot reach the API server ({type(exc).__name__}: {exc})",
                                  hint="check the cluster address and your network") from exc
        raise AssertionError("unreachable")

    # -- convenience ---------------------------------------------------------------------
    def list_nodes(self, label_selector: str | None = None) -> dict[str, Any]:
        kw: dict[str, Any] = {"label_selector": label_selector} if label_selector else {}
        return dict(self.call("list nodes", self.core.list_node, **kw))

    def list_pods(self, namespace: str | None = None, label_selector: str | None = None,
                  field_selector: str | None = None) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        if label_selector:
            kw["label_selector"] = label_selector
        if field_selector:
            kw["field_selector"] = field_selector
        if namespace is None:
            return dict(self.call("list pods", self.core.list_pod_for_all_namespaces, **kw))
        return dict(self.call("list pods", self.core.list_namespaced_pod, namespace, **kw))

    def create(self, kind: str, body: dict[str, Any]) -> None:
        ns = body["metadata"].get("namespace", self.namespace)
        core: Any = self.core
        rbac: Any = self.rbac
        net: Any = self.networking
        fn = {"Pod": core.create_namespaced_pod, "ConfigMap": core.create_namespaced_config_map,
              "Service": core.create_namespaced_service,
              "NetworkPolicy": net.create_namespaced_network_policy,
              "ServiceAccount": core.create_namespaced_service_account,
              "Role": rbac.create_namespaced_role, "RoleBinding": rbac.create_namespaced_role_binding}[kind]
        self.call(f"create {kind.lower()} {body['metadata']['name']}", fn, ns, body, ok_conflict=True)

    def apply_role(self, body: dict[str, Any]) -> None:
        """Create the Role, or replace it where it exists (its rules grow with the run's pods)."""
        name, ns = body["metadata"]["name"], body["metadata"].get("namespace", self.namespace)
        rbac: Any = self.rbac
        if self.call(f"create role {name}", rbac.create_namespaced_role, ns, body, ok_conflict=True) is None:
            self.call(f"replace role {name}", rbac.replace_namespaced_role, name, ns, body)

    def missing_service_account(self, name: str) -> tuple[str, str] | None:
        """(what, fix) when pods cannot run as the named account; None: it exists."""
        core: Any = self.core
        if self.call(f"get serviceaccount {name}", core.read_namespaced_service_account, name, self.namespace,
                     ok_missing=True) is not None:
            return None
        return (f"service account {self.namespace}/{name} (kubernetes.service_account) does not exist",
                f"kubectl create serviceaccount {name} -n {self.namespace}, or drop kubernetes.service_account: "
                "each run then makes its own")

    def patch_pod(self, name: str, patch: dict[str, Any]) -> dict[str, Any] | None:
        got = self.call(f"patch pod {name}", self.core.patch_namespaced_pod, name, self.namespace, patch,
                        _content_type="application/merge-patch+json", ok_missing=True)
        return dict(got) if got is not None else None

    def delete_configmaps(self, selector: str) -> None:
        self.call("delete configmaps", self.core.delete_collection_namespaced_config_map, self.namespace,
                  label_selector=selector)

    def delete_pod(self, name: str, grace_s: int = 0) -> None:
        self.call(f"delete pod {name}", self.core.delete_namespaced_pod, name, self.namespace,
                  grace_period_seconds=grace_s, ok_missing=True)

    def _run_kinds(self) -> list[RunKind]:
        """What a run creates, in clean-up order (the pods first: a pod's account is looked up
        while it is deleted, so the service accounts go last)."""
        core: Any = self.core
        rbac: Any = self.rbac
        net: Any = self.networking
        return [
            RunKind("pods", "pod", core.list_namespaced_pod, core.delete_collection_namespaced_pod,
                    options={"grace_period_seconds": 0}),
            # The rounds' task ConfigMaps (handout.py) the controller could not delete as they ended.
            RunKind("configmaps", "configmap", core.list_namespaced_config_map,
                    core.delete_collection_namespaced_config_map),
            # No delete-collection for services before Kubernetes 1.31: one by one.
            RunKind("services", "service", core.list_namespaced_service, None, core.delete_namespaced_service),
            RunKind("networkpolicies", "networkpolicy", net.list_namespaced_network_policy,
                    net.delete_collection_namespaced_network_policy),
            RunKind("roles", "role", rbac.list_namespaced_role, rbac.delete_collection_namespaced_role),
            RunKind("rolebindings", "rolebinding", rbac.list_namespaced_role_binding,
                    rbac.delete_collection_namespaced_role_binding),
            RunKind("serviceaccounts", "serviceaccount", core.list_namespaced_service_account,
                    core.delete_collection_namespaced_service_account),
        ]

    def _list_run(self, kind: RunKind, selector: str) -> list[dict[str, Any]]:
        return list(self.call(f"list {kind.plural}", kind.list, self.namespace, label_selector=selector).get("items", []))

    def delete_run(self, selector: str) -> dict[str, str]:
        """Delete every object the run created (label selected: exact, nothing else).

        Each kind is tried even when another failed (each call with its own retries), so one
        failing endpoint leaves as little as possible; returns kind -> its error, for those that failed.
        """
        errors = {}
        for kind in self._run_kinds():
            try:
                if kind.delete_collection is not None:
                    self.call(f"delete {kind.plural}", kind.delete_collection, self.namespace, label_selector=selector,
                              **kind.options)
                    continue
                assert kind.delete_one is not None
                for obj in self._list_run(kind, selector):
                    self.call(f"delete {kind.singular}", kind.delete_one, obj["metadata"]["name"], self.namespace,
                              ok_missing=True)
            except BackendError as exc:
                errors[kind.plural] = exc.message
        return errors

    def run_objects(self, selector: str) -> list[str]:
        """Every object of the run that still exists, as kind/name (pods being deleted included)."""
        return [f"{kind.singular}/{o['metadata']['name']}" for kind in self._run_kinds()
                for o in self._list_run(kind, selector)]

    def delete_command(self, selector: str) -> str:
        """The kubectl line that removes what ``delete_run`` removes."""
        return f"kubectl delete {','.join(k.plural for k in self._run_kinds())} -n {self.namespace} -l {selector}"

    def events_for(self, name: str) -> list[dict[str, Any]]:
        got = self.call("list events", self.core.list_namespaced_event, self.namespace,
                        field_selector=f"involvedObject.name={name}")
        return list(got.get("items", []))

    def get_custom(self, group: str, version: str, plural: str, name: str,
                   namespace: str | None = None) -> dict[str, Any] | None:
        if namespace is None:
            got = self.call(f"get {plural}/{name}", self.custom.get_cluster_custom_object, group, version, plural,
                            name, ok_missing=True)
        else:
            got = self.call(f"get {plural}/{name}", self.custom.get_namespaced_custom_object, group, version,
                            namespace, plural, name, ok_missing=True)
        return dict(got) if got is not None else None

    def list_custom(self, group: str, version: str, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        try:
            if namespace is None:
                got = self.call(f"list {plural}", self.custom.list_cluster_custom_object, group, version, plural)
            else:
                got = self.call(f"list {plural}", self.custom.list_namespaced_custom_object, group, version,
                                namespace, plural)
        except NotFound:  # the CRD is not installed
            return []
        return list(got.get("items", []))

    def stream(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A raw streaming response (watch / follow); the caller iterates and closes it.
        An error status is raised as its ApiError (api_errors), with no retry."""
        from kubernetes.client.exceptions import ApiException

        kwargs["_preload_content"] = False
        try:
            return fn(*args, **kwargs)
        except ApiException as exc:
            raise api_error(what, exc) from exc


def _retry_after(exc: Any) -> float | None:
    try:
        value = (exc.headers or {}).get("Retry-After")
        return min(float(value), 10.0) if value else None
    except (TypeError, ValueError):
        return None


def iter_lines(resp: Any) -> Iterator[str]:
    """Complete lines of a streaming response (watch events, followed logs)."""
    partial = b""
    for chunk in resp.stream(65536, decode_content=False):
        partial += chunk
        *lines, partial = partial.split(b"\n")
        for line in lines:
            yield line.decode("utf-8", "replace")
    if partial:
        yield partial.decode("utf-8", "replace")
