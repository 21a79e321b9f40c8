"""The authenticator contract: keys authenticate to their role and tenant; bad, revoked keys refused."""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from vpa.auth.base import ALLOWED, UNTENANTED_ROLES, Action, Authenticator, Principal, Role
from vpa.errors import AuthenticationError, PermissionDenied, ValidationError

from vpa_conformance.checks import fail
from vpa_conformance.components.common import (
    COMPONENT_EXAMPLES,
    _Counter,
    _CountsExamples,
)
from vpa_conformance.profiles import clause_settings

# --- auth ------------------------------------------------------------------------------------

_TENANTS = st.one_of(
    st.sampled_from(["acme", "globex", "t-1", "caf\u00e9"]),
    st.text(string.ascii_lowercase, min_size=1, max_size=8),
)
_ROLES = st.sampled_from([*Role, *(r.value for r in Role)])
#: Key names: printable text (control and invisible characters are refused, and checked apart).
_NAMES = st.text(st.characters(categories=("L", "N", "P", "S")) | st.just(" "), max_size=10)


def _tenant_for(role: Any, tenant: str) -> str | None:
    """Keys of untenanted roles (an operator's) take no tenant; every other key one."""
    return None if Role(role) in UNTENANTED_ROLES else tenant


class AuthContract(_CountsExamples):
    """API keys: a created key authenticates to its role and tenant; unknown, malformed and
    revoked keys are rejected; roles allow exactly their actions; no secret is kept or shown."""

    @pytest.fixture
    def authenticator(self) -> Authenticator:
        pytest.fail("an AuthContract subclass must define an `authenticator` fixture")

    @staticmethod
    def _check_principal(principal: Any, info: Any, role: Role, tenant: str) -> None:
        if not isinstance(principal, Principal):
            fail(f"authenticate must return a Principal, got {type(principal).__name__}")
        if (principal.key_id, principal.role, principal.tenant) != (info.key_id, role, tenant):
            fail(f"the key authenticates as {principal!r}; it was created for role {role}, tenant {tenant!r}")

    @clause_settings(COMPONENT_EXAMPLES["auth"])
    @given(keys=st.lists(st.tuples(_ROLES, _TENANTS, _NAMES), min_size=1, max_size=4))
    def test_keys_authenticate(
        self, authenticator: Authenticator, vpa_examples: _Counter, keys: list[tuple[Any, str, str]]
    ) -> None:
        """Each created key authenticates to its own key id, role and tenant; the secret
        appears in no info, principal or listing."""
        vpa_examples.tick()
        created = []
        for role, wanted_tenant, name in keys:
            tenant = _tenant_for(role, wanted_tenant)
            info, secret = authenticator.create_key(role, tenant, name)
            if not isinstance(secret, str) or len(secret) < 16:
                fail("create_key must return a secret string of at least 16 characters")
            if (info.role, info.tenant, info.name) != (Role(role), tenant, name):
                fail(f"create_key returned {info!r} for role {role}, tenant {tenant!r}")
            created.append((info, secret, Role(role), tenant))
        listing = repr(authenticator.list_keys())
        for info, secret, role, tenant in created:
            principal = authenticator.authenticate(secret)
            self._check_principal(principal, info, role, tenant)
            for shown in (repr(info), repr(principal), listing):
                if secret in shown or secret[-16:] in shown:
                    fail("the secret of a key appears in its info, principal or the key listing")
        listed = {i.key_id for i in authenticator.list_keys()}
        if not {info.key_id for info, *_ in created} <= listed:
            fail("list_keys does not list every created key")

    @clause_settings(COMPONENT_EXAMPLES["auth"])
    @given(
        garbage=st.one_of(
            st.none(),
            st.just(""),
            st.text(max_size=60),
            st.from_regex(r"vpa_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", fullmatch=True),
        ),
        cut=st.integers(1, 10),
        flip=st.integers(0, 1000),
    )
    def test_unknown_keys_rejected(
        self, authenticator: Authenticator, vpa_examples: _Counter, garbage: str | None, cut: int, flip: int
    ) -> None:
        """Missing, malformed, unknown, truncated, extended or altered keys raise
        AuthenticationError."""
        vpa_examples.tick()
        _, secret = authenticator.create_key(Role.READER, "t")
        position = flip % len(secret)
        altered = secret[:position] + ("A" if secret[position] != "A" else "B") + secret[position + 1 :]
        for bad in (
            garbage,
            secret[:-cut],
            secret + "x",
            altered,
            secret.upper() if secret.upper() != secret else None,
        ):
            if bad == secret:
                continue
            try:
                authenticator.authenticate(bad)
            except AuthenticationError:
                continue
            except Exception as exc:
                fail(f"authenticate({bad!r}) raised {type(exc).__name__}; expected AuthenticationError")
            fail(f"authenticate accepted a key that was never issued: {bad!r}")

    def test_revoke(self, authenticator: Authenticator, vpa_examples: _Counter) -> None:
        """A revoked key is rejected; revoke is True once, then False; other keys still work."""
        vpa_examples.tick()
        info, secret = authenticator.create_key(Role.WRITER, "acme", "to revoke")
        other_info, other = authenticator.create_key(Role.WRITER, "acme", "kept")
        if authenticator.revoke(info.key_id) is not True:
            fail("revoke of an active key must return True")
        try:
            authenticator.authenticate(secret)
        except AuthenticationError:
            pass
        else:
            fail("a revoked key still authenticates")
        if authenticator.revoke(info.key_id) is not False:
            fail("revoking an already revoked key must return False")
        if authenticator.revoke("no-such-key") is not False:
            fail("revoking an unknown key id must return False")
        self._check_principal(authenticator.authenticate(other), other_info, Role.WRITER, "acme")
        states = {i.key_id: i.revoked for i in authenticator.list_keys()}
        if states.get(info.key_id) is not True or states.get(other_info.key_id) is not False:
            fail("list_keys does not show which keys are revoked")

    def test_roles(self, authenticator: Authenticator, vpa_examples: _Counter) -> None:
        """reader may read; writer read and write; admin everything; else PermissionDenied."""
        vpa_examples.tick()
        for role in Role:
            _, secret = authenticator.create_key(role, _tenant_for(role, "acme"))
            principal = authenticator.authenticate(secret)
            for action in Action:
                allowed = action in ALLOWED[role]
                for spelled in (action, action.value):
                    try:
                        authenticator.authorize(principal, spelled)
                    except PermissionDenied:
                        if allowed:
                            fail(f"role {role} was refused {action}")
                    else:
                        if not allowed:
                            fail(f"role {role} was allowed {action}")

    def test_tenants(self, authenticator: Authenticator, vpa_examples: _Counter) -> None:
        """Keys of different tenants authenticate to their own tenant, never another's."""
        vpa_examples.tick()
        tenants = ["acme", "globex", "initech"]
        secrets = {t: authenticator.create_key(Role.ADMIN, t)[1] for t in tenants}
        for tenant, secret in secrets.items():
            if authenticator.authenticate(secret).tenant != tenant:
                fail(f"a key of tenant {tenant!r} authenticates to another tenant")

    def test_invalid_requests(self, authenticator: Authenticator, vpa_examples: _Counter) -> None:
        """An unknown role, an empty tenant, a tenant or key name with a control or invisible
        character (``acme\x00`` would otherwise pass for ``acme`` in some stores) raises
        ValidationError, and creates no key."""
        vpa_examples.tick()
        cases = [("superuser", "acme", ""), ("reader", "", ""), ("reader", "acme\x00", ""),
                 ("reader", "acme\n", ""), ("writer", "ac\u200bme", ""), ("reader", "acme", "name\x1f")]
        before = len(authenticator.list_keys())
        for role, tenant, name in cases:
            try:
                authenticator.create_key(role, tenant, name)
            except ValidationError:
                continue
            fail(f"create_key({role!r}, {tenant!r}, {name!r}) did not raise ValidationError")
        if len(authenticator.list_keys()) != before:
            fail("a refused create_key left a key behind")
