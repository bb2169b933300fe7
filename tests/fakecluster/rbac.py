"""Authentication and RBAC authorization, as kube-apiserver's token authenticator and RBAC
authorizer decide them, over the Roles, ClusterRoles and their bindings in the store.

- ``Users``: bearer token -> (user name, groups). The kubeconfig user's token is a
  cluster-admin (group ``system:masters``: never asked, like kube-apiserver's privileged
  group); each service account gets its own token, user
  ``system:serviceaccount:NS:NAME`` in the groups ``system:serviceaccounts``,
  ``system:serviceaccounts:NS`` and ``system:authenticated``.
- ``Attributes.of``: the request's verb (get / list / watch / create / update / patch /
  delete / deletecollection), API group, resource, subresource, name and namespace, parsed
  from the URL as kube-apiserver's RequestInfo does; a list or watch with the field
  selector ``metadata.name=X`` carries the name X, so a ``resourceNames`` rule can allow it
  (the Kubernetes RBAC docs, "Referring to resources"); create and deletecollection never
  carry a name, so such rules never allow them.
- ``allowed``: some rule of a Role bound in the request's namespace or of a ClusterRole
  (bound by a RoleBinding there or by a ClusterRoleBinding) matches it.
- ``not_held``: escalation prevention, the rules of a Role being written (or of the role a
  binding refers to) that the writer does not hold itself.
- ``forbidden_message``: the 403 Status message in kube-apiserver's wording.
- ``missing_service_account``: a pod naming an account that does not exist (admission, 403).
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .selectors import query_true

if TYPE_CHECKING:
    from .store import Store

ADMIN_TOKEN = "fake-token"  # the user of FakeCluster.kubeconfig
ADMIN_USER = "kubernetes-admin"
MASTERS = "system:masters"  # kube-apiserver allows this group everything without asking RBAC
AUTHENTICATED = "system:authenticated"
RBAC_GROUP = "rbac.authorization.k8s.io"


def service_account_user(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


@dataclass(frozen=True)
class Identity:
    user: str
    groups: tuple[str, ...]

    @property
    def privileged(self) -> bool:
        return MASTERS in self.groups


class Users:
    """The token authenticator: which user a bearer token is."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.admin = Identity(ADMIN_USER, (MASTERS, AUTHENTICATED))
        self._by_token: dict[str, Identity] = {ADMIN_TOKEN: self.admin}
        self._tokens: dict[Identity, str] = {}

    def token_for(self, user: str, groups: tuple[str, ...] = ()) -> str:
        """The token of ``user`` (made on first use; the same one after)."""
        who = Identity(user, tuple(dict.fromkeys((*groups, AUTHENTICATED))))
        with self._lock:
            if who not in self._tokens:
                token = secrets.token_urlsafe(24)
                self._tokens[who] = token
                self._by_token[token] = who
            return self._tokens[who]

    def service_account_token(self, namespace: str, name: str) -> str:
        return self.token_for(service_account_user(namespace, name),
                              ("system:serviceaccounts", f"system:serviceaccounts:{namespace}"))

    def authenticate(self, authorization: str | None) -> Identity | None:
        """The user of an ``Authorization: Bearer TOKEN`` header (None: missing or unknown, a 401)."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        with self._lock:
            return self._by_token.get(token.strip())


@dataclass(frozen=True)
class Attributes:
    """What a resource request asks to do, in RBAC's terms."""

    verb: str
    group: str  # "" for the core group
    resource: str
    subresource: str
    name: str
    namespace: str  # "" for cluster-scoped requests and lists across namespaces

    @classmethod
    def of(cls, method: str, group: str, namespace: str | None, resource: str, name: str | None,
           subresource: str | None, query: dict[str, str]) -> Attributes:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, "get")
        found = name or ""
        if not found and verb == "get":
            verb = "watch" if query_true(query, "watch") else "list"
            found = exact_name(query.get("fieldSelector"))
        if not found and verb == "delete":
            verb = "deletecollection"
        return cls(verb, group, resource, subresource or "", found, namespace or "")

    @property
    def full_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def exact_name(selector: str | None) -> str:
    """X of a ``metadata.name=X`` (or ``==``) term of a field selector, else "" (RequiresExactMatch)."""
    for term in (selector or "").split(","):
        if "!=" in term:
            continue
        field, sep, value = term.replace("==", "=").partition("=")
        if sep and field.strip() == "metadata.name":
            return value.strip()
    return ""


def rule_allows(rule: dict[str, Any], attrs: Attributes) -> bool:
    """One PolicyRule against one request (kube's RuleAllows)."""
    verbs, groups = rule.get("verbs") or [], rule.get("apiGroups") or []
    resources, names = rule.get("resources") or [], rule.get("resourceNames") or []
    if "*" not in verbs and attrs.verb not in verbs:
        return False
    if "*" not in groups and attrs.group not in groups:
        return False
    if not any(r in ("*", attrs.full_resource) or (attrs.subresource and r == f"*/{attrs.subresource}")
               for r in resources):
        return False
    return not names or attrs.name in names


def _bound(subjects: list[dict[str, Any]], who: Identity, binding_namespace: str) -> bool:
    for s in subjects or []:
        kind, name = s.get("kind"), s.get("name")
        if kind == "ServiceAccount":
            # A ServiceAccount subject without a namespace means the binding's own.
            if who.user == service_account_user(s.get("namespace") or binding_namespace, str(name)):
                return True
        elif kind == "User" and who.user == name:
            return True
        elif kind == "Group" and name in who.groups:
            return True
    return False


def _role_rules(store: Store, ref: dict[str, Any], namespace: str) -> list[dict[str, Any]] | None:
    """The rules of the role a roleRef names (None: it does not exist)."""
    if ref.get("kind") == "ClusterRole":
        role = store.get("clusterroles", "", str(ref.get("name")))
    else:
        role = store.get("roles", namespace, str(ref.get("name")))
    return None if role is None else list(role.get("rules") or [])


def rules_of(store: Store, who: Identity, namespace: str) -> list[dict[str, Any]]:
    """Every rule that applies to ``who`` in ``namespace`` ("": cluster scope only)."""
    rules: list[dict[str, Any]] = []
    for binding in store.list("clusterrolebindings"):
        if _bound(binding.get("subjects") or [], who, ""):
            rules += _role_rules(store, binding.get("roleRef") or {}, "") or []
    if namespace:
        for binding in store.list("rolebindings", namespace):
            if _bound(binding.get("subjects") or [], who, namespace):
                rules += _role_rules(store, binding.get("roleRef") or {}, namespace) or []
    return rules


def allowed(store: Store, who: Identity, attrs: Attributes) -> bool:
    return who.privileged or any(rule_allows(r, attrs) for r in rules_of(store, who, attrs.namespace))


def forbidden_message(who: Identity, attrs: Attributes, reason: str = "") -> str:
    """kube-apiserver's 403 message, e.g. ``pods "x" is forbidden: User "..." cannot get resource
    "pods" in API group "" in the namespace "ns"``."""
    qualified = f"{attrs.resource}.{attrs.group}" if attrs.group else attrs.resource
    head = f'{qualified} "{attrs.name}"' if attrs.name else qualified
    where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    return (f'{head} is forbidden: User "{who.user}" cannot {attrs.verb} resource "{attrs.full_resource}" '
            f'in API group "{attrs.group}" {where}' + (f": {reason}" if reason else ""))


# -- escalation prevention ---------------------------------------------------------------
def _atoms(rule: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """A rule broken into (group, resource, verb, name) single permissions (name "": any)."""
    return [(g, r, v, n) for g in rule.get("apiGroups") or [] for r in rule.get("resources") or []
            for v in rule.get("verbs") or [] for n in (rule.get("resourceNames") or [""])]


def _covers(owner: dict[str, Any], atom: tuple[str, str, str, str]) -> bool:
    """The owner's rule holds the single permission: the request it describes is one the rule allows."""
    group, resource, verb, name = atom
    base, _, sub = resource.partition("/")
    return rule_allows(owner, Attributes(verb, group, base, sub, name, ""))


def not_held(store: Store, who: Identity, namespace: str, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The parts of ``rules`` that ``who`` does not hold in ``namespace`` (kube's ConfirmNoEscalation)."""
    if who.privileged:
        return []
    owned = rules_of(store, who, namespace)
    return [{"apiGroups": [g], "resources": [r], "verbs": [v], **({"resourceNames": [n]} if n else {})}
            for rule in rules for (g, r, v, n) in _atoms(rule) if not any(_covers(o, (g, r, v, n)) for o in owned)]


def escalation_message(who: Identity, missing: list[dict[str, Any]]) -> str:
    """Why a Role or binding was refused, in kube-apiserver's words."""
    groups = " ".join(f'"{g}"' for g in who.groups)

    def show(rule: dict[str, Any]) -> str:
        parts = [f"{key}:[{', '.join(f'{chr(34)}{v}{chr(34)}' for v in rule[field])}]"
                 for key, field in (("APIGroups", "apiGroups"), ("Resources", "resources"),
                                    ("ResourceNames", "resourceNames"), ("Verbs", "verbs")) if field in rule]
        return "{" + ", ".join(parts) + "}"

    return (f'user "{who.user}" (groups=[{groups}]) is attempting to grant RBAC permissions not currently held:\n'
            + "\n".join(show(r) for r in missing))


ROLE_KINDS = {"roles": "Role", "clusterroles": "ClusterRole"}
BINDING_KINDS = {"rolebindings": "roles", "clusterrolebindings": "clusterroles"}


def refused_grant(store: Store, who: Identity, plural: str, namespace: str, body: dict[str, Any]) -> str | None:
    """Why writing this Role / ClusterRole / binding would escalate ``who`` (None: it does not).

    A role's rules must all be held by the writer unless it may ``escalate`` on roles; a
    binding's role must be held unless the writer may ``bind`` it. Like kube-apiserver, the
    check is on create and update (a PATCH is not looked at here).
    """
    if who.privileged or plural not in (*ROLE_KINDS, *BINDING_KINDS):
        return None
    name = str((body.get("metadata") or {}).get("name", ""))
    if plural in ROLE_KINDS:
        if allowed(store, who, Attributes("escalate", RBAC_GROUP, plural, "", name, namespace)):
            return None
        rules = list(body.get("rules") or [])
    else:
        ref = body.get("roleRef") or {}
        ref_plural = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
        if allowed(store, who, Attributes("bind", RBAC_GROUP, ref_plural, "", str(ref.get("name", "")), namespace)):
            return None
        found = _role_rules(store, ref, namespace)
        if found is None:
            return (f'{plural}.{RBAC_GROUP} "{name}" is forbidden: '
                    f'{ref_plural}.{RBAC_GROUP} "{ref.get("name")}" not found')
        rules = found
    missing = not_held(store, who, namespace, rules)
    if not missing:
        return None
    return f'{plural}.{RBAC_GROUP} "{name}" is forbidden: {escalation_message(who, missing)}'


def missing_service_account(store: Any, namespace: str, pod: dict[str, Any]) -> str | None:
    """The ServiceAccount admission plugin's check: the pod's service account when it does not
    exist ("default" always does, as the namespace's service-account controller makes it)."""
    account = str((pod.get("spec") or {}).get("serviceAccountName") or "default")
    if account == "default" or store.get("serviceaccounts", namespace, account) is not None:
        return None
    return account
