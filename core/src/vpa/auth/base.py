"""The auth interface: an API key → a principal with a role and a tenant; roles → actions.

Every role but ``operator`` belongs to one tenant and reaches only that tenant's documents and
figures. An ``operator`` key belongs to no tenant: it sees the whole process's figures (stats,
metrics, health details) and nothing else — no document, search or key of any tenant.
"""

from __future__ import annotations

import abc
import enum

import attrs

from vpa.errors import PermissionDenied, ValidationError, VPAError
from vpa.layout import MAX_TENANT_LENGTH  # the RAG layer's own bound: a key never holds more

MAX_KEY_NAME_LENGTH = 200


class Role(enum.StrEnum):
    READER = "reader"
    WRITER = "writer"
    ADMIN = "admin"
    OPERATOR = "operator"


class Action(enum.StrEnum):
    READ = "read"  # get, search, stats of the key's tenant
    WRITE = "write"  # add, update, delete documents
    ADMIN = "admin"  # manage the tenant's keys, see its metrics
    OPERATE = "operate"  # every tenant's figures: stats, metrics, health details (operator only)


ALLOWED: dict[Role, frozenset[Action]] = {
    Role.READER: frozenset({Action.READ}),
    Role.WRITER: frozenset({Action.READ, Action.WRITE}),
    Role.ADMIN: frozenset({Action.READ, Action.WRITE, Action.ADMIN}),
    Role.OPERATOR: frozenset({Action.OPERATE}),
}

#: Roles whose keys carry no tenant.
UNTENANTED_ROLES = frozenset({Role.OPERATOR})


def _printable_problem(value: str) -> str | None:
    """The first character that is not printable (``str.isprintable``: control and format
    characters — NUL, newlines, escapes, bidi overrides, zero-width — separators other than the
    space, private-use and unassigned code points), as the RAG layer refuses them in tenants."""
    for char in value:
        if not char.isprintable():
            return f"control or invisible character U+{ord(char):04X}"
    return None


def check_tenant_name(tenant: object) -> str:
    """A tenant a key may carry: 1-64 characters, no '/', nothing unprintable (NUL, newlines,
    escapes, bidi overrides, ...), no surrounding whitespace — what the RAG layer accepts
    (`vpa.layout.check_tenant`), and a little less."""
    problem = None
    if not isinstance(tenant, str) or not tenant:
        problem = "it is empty"
    elif len(tenant) > MAX_TENANT_LENGTH:
        problem = f"it is {len(tenant)} characters long"
    elif "/" in tenant:
        problem = "it holds '/'"
    elif tenant != tenant.strip():
        problem = "it starts or ends with whitespace"
    else:
        problem = _printable_problem(tenant)
    if problem is not None:
        raise ValidationError(
            f"tenant must be 1 to {MAX_TENANT_LENGTH} characters without '/', control characters or "
            f"surrounding whitespace, got {tenant!r} ({problem})"
        )
    return tenant  # type: ignore[return-value]


def check_key_name(name: object) -> str:
    """A key's label: at most 200 characters, no control or invisible characters."""
    if not isinstance(name, str) or len(name) > MAX_KEY_NAME_LENGTH:
        raise ValidationError(f"a key name must be a string of at most {MAX_KEY_NAME_LENGTH} characters")
    problem = _printable_problem(name)
    if problem is not None:
        raise ValidationError(f"a key name must not hold a {problem}, got {name!r}")
    return name


def check_key_scope(role: Role | str, tenant: object) -> tuple[Role, str | None]:
    """The role and tenant a new key may have: an operator key has no tenant, every other key one."""
    try:
        role = Role(role)
    except ValueError:
        names = ", ".join(r.value for r in Role)
        raise ValidationError(f"unknown role {role!r}; use {names}") from None
    if role in UNTENANTED_ROLES:
        if tenant not in (None, ""):
            raise ValidationError(f"{role} keys see every tenant's figures; they take no tenant")
        return role, None
    if tenant in (None, ""):
        raise ValidationError(f"{role} keys need a tenant")
    return role, check_tenant_name(tenant)


def key_problem(info: ApiKeyInfo) -> str | None:
    """Why a stored key must not be honoured (a file edited by hand or by an older version)."""
    try:
        check_key_scope(info.role, info.tenant)
    except ValidationError as exc:
        return str(exc)
    return None


class AuthUnavailable(VPAError):
    """The shared key or rate-limit store (Redis, ``VPA_REDIS_URL``) cannot be reached or did not
    answer in time. The request is refused (503 ``auth_unavailable``), never let through unchecked:
    a key revoked elsewhere or a caller over its rate could not be told apart from a good one."""

    code = "auth_unavailable"


@attrs.frozen
class Principal:
    """Who is calling: never carries the key itself. ``tenant`` is None only for an operator."""

    key_id: str
    role: Role
    tenant: str | None
    name: str = ""


@attrs.frozen
class ApiKeyInfo:
    key_id: str
    role: Role
    tenant: str | None
    name: str
    created_at: float
    revoked: bool = False


class Authenticator(abc.ABC):
    name: str = ""

    @abc.abstractmethod
    def create_key(self, role: Role | str, tenant: str | None, name: str = "") -> tuple[ApiKeyInfo, str]:
        """Create a key; returns its info and the secret, which is shown once and never stored.
        Implementations validate with `check_key_scope` and `check_key_name`."""

    @abc.abstractmethod
    def authenticate(self, key: str | None) -> Principal:
        """The principal for a key; raises `AuthenticationError` for a missing, unknown or revoked key."""

    async def authenticate_async(self, key: str | None) -> Principal:
        """`authenticate` for the server's event loop. The default calls it in place (a lookup in
        memory); a backend that asks a server over the network (`RedisApiKeyAuthenticator`)
        overrides it so no request waits on another's round trip."""
        return self.authenticate(key)

    @abc.abstractmethod
    def revoke(self, key_id: str) -> bool: ...

    @abc.abstractmethod
    def list_keys(self) -> list[ApiKeyInfo]: ...

    def authorize(self, principal: Principal, action: Action | str) -> None:
        """Raise `PermissionDenied` unless the principal's role allows the action."""
        action = Action(action)
        if action not in ALLOWED[principal.role]:
            raise PermissionDenied(f"role {principal.role} may not {action}")
