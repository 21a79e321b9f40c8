"""The auth interface: an API key → a principal with a role and a tenant; roles → actions."""

from __future__ import annotations

import abc
import enum

import attrs

from vpa.errors import PermissionDenied


class Role(enum.StrEnum):
    READER = "reader"
    WRITER = "writer"
    ADMIN = "admin"


class Action(enum.StrEnum):
    READ = "read"  # get, search, stats
    WRITE = "write"  # add, update, delete documents
    ADMIN = "admin"  # manage keys, drop collections


ALLOWED: dict[Role, frozenset[Action]] = {
    Role.READER: frozenset({Action.READ}),
    Role.WRITER: frozenset({Action.READ, Action.WRITE}),
    Role.ADMIN: frozenset(Action),
}


@attrs.frozen
class Principal:
    """Who is calling: never carries the key itself."""

    key_id: str
    role: Role
    tenant: str
    name: str = ""


@attrs.frozen
class ApiKeyInfo:
    key_id: str
    role: Role
    tenant: str
    name: str
    created_at: float
    revoked: bool = False


class Authenticator(abc.ABC):
    name: str = ""

    @abc.abstractmethod
    def create_key(self, role: Role | str, tenant: str, name: str = "") -> tuple[ApiKeyInfo, str]:
        """Create a key; returns its info and the secret, which is shown once and never stored."""

    @abc.abstractmethod
    def authenticate(self, key: str | None) -> Principal:
        """The principal for a key; raises `AuthenticationError` for a missing, unknown or revoked key."""

    @abc.abstractmethod
    def revoke(self, key_id: str) -> bool: ...

    @abc.abstractmethod
    def list_keys(self) -> list[ApiKeyInfo]: ...

    def authorize(self, principal: Principal, action: Action | str) -> None:
        """Raise `PermissionDenied` unless the principal's role allows the action."""
        action = Action(action)
        if action not in ALLOWED[principal.role]:
            raise PermissionDenied(f"role {principal.role} may not {action}")
