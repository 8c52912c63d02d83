"""Who may ask: API keys (hashed with SHA-256) and console users (salted password hashes)."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from pms_common import timeutil
from pms_registry import schema as t
from pms_registry.core import RegistryCore, require_customer
from pms_registry.errors import RegistryError
from pms_registry.records import ROLES, ApiKey, KeyScope, Principal, Role, User

USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
LANGUAGES = ("ja", "en")
MIN_PASSWORD_LENGTH = 8
# A key's last use is written at most this often: every request authenticates, and a write per
# request would make every read a registry write.
LAST_USED_RESOLUTION = timedelta(minutes=1)
_UNCHANGED: Any = object()


@dataclass(frozen=True)
class LockoutPolicy:
    """`max_failures` wrong passwords for one user within `window` lock it for `lock_for`."""

    max_failures: int = 5
    window: timedelta = timedelta(minutes=5)
    lock_for: timedelta = timedelta(minutes=5)


@dataclass(frozen=True)
class SignIn:
    """What a login try came to: the user when the password was right and the user not locked out;
    `locked_until` when the user is locked out (now, or by this very failure)."""

    user: User | None
    locked_until: datetime | None = None


def hash_api_key(secret: str) -> str:
    # Keys are 256-bit random tokens, so a plain SHA-256 is enough: there is nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


class Accounts(RegistryCore):
    # ---- API keys --------------------------------------------------------------------------------
    def create_api_key(self, *, label: str, created_at: datetime, customer_id: str | None = None,
                       secret: str | None = None, user_id: int | None = None, scope: KeyScope = "write",
                       expires_at: datetime | None = None) -> str:
        """Store a key (hashed); returns the secret, which is shown once and never stored.

        A user's key (`user_id`) speaks with that user's role and customer, narrowed to `scope`;
        `customer_id` is then taken from the user. A key without a user is an admin key (no customer)
        or a customer's operator key, as keys were before users had keys."""
        if scope not in ("read", "write"):
            raise RegistryError(f"a key's scope is read or write, not {scope!r}")
        if expires_at is not None and expires_at <= created_at:
            raise RegistryError("a key cannot expire before it is made")
        secret = secret or "pms_" + secrets.token_urlsafe(32)
        digest = hash_api_key(secret)
        with self._tx() as conn:
            if user_id is not None:
                owner = conn.execute(select(t.users.c.customer_id).where(t.users.c.user_id == user_id)).first()
                if owner is None:
                    raise RegistryError(f"no user {user_id}")
                customer_id = owner[0]
            if conn.execute(select(t.api_keys.c.key_id).where(t.api_keys.c.key_hash == digest)).first() is None:
                conn.execute(insert(t.api_keys).values(
                    key_id=secrets.token_hex(8), key_hash=digest, customer_id=customer_id, label=label,
                    created_at=created_at, revoked=False, user_id=user_id, scope=scope, expires_at=expires_at,
                ))
        return secret

    def list_api_keys(self, *, user_id: int | None = None) -> list[ApiKey]:
        """Every key's record, or one user's (never its secret, which is not stored)."""
        query = select(t.api_keys).order_by(t.api_keys.c.created_at, t.api_keys.c.key_id)
        if user_id is not None:
            query = query.where(t.api_keys.c.user_id == user_id)
        with self._tx() as conn:
            return [_api_key(row) for row in conn.execute(query).mappings()]

    def get_api_key(self, key_id: str) -> ApiKey | None:
        with self._tx() as conn:
            row = conn.execute(select(t.api_keys).where(t.api_keys.c.key_id == key_id)).mappings().first()
        return None if row is None else _api_key(row)

    def key_id_of(self, secret: str) -> str | None:
        with self._tx() as conn:
            return conn.execute(select(t.api_keys.c.key_id)
                                .where(t.api_keys.c.key_hash == hash_api_key(secret))).scalar()

    def revoke_api_key_by_id(self, key_id: str) -> bool:
        with self._tx() as conn:
            result = conn.execute(update(t.api_keys).where(t.api_keys.c.key_id == key_id).values(revoked=True))
        return bool(result.rowcount)

    def revoke_api_key(self, secret: str) -> bool:
        with self._tx() as conn:
            result = conn.execute(update(t.api_keys).where(t.api_keys.c.key_hash == hash_api_key(secret))
                                  .values(revoked=True))
        return bool(result.rowcount)

    def authenticate(self, secret: str, at: datetime | None = None) -> Principal | None:
        """Whom a key speaks for; None for an unknown, revoked or expired key, or one whose user is gone."""
        keys, users = t.api_keys, t.users
        with self._tx() as conn:
            row = conn.execute(
                select(keys.c.key_id, keys.c.customer_id, keys.c.user_id, keys.c.scope, keys.c.expires_at,
                       keys.c.last_used_at, users.c.role, users.c.customer_id.label("user_customer"),
                       users.c.user_id.label("owner"))
                .select_from(keys.outerjoin(users, users.c.user_id == keys.c.user_id))
                .where(keys.c.key_hash == hash_api_key(secret), keys.c.revoked.is_(False))
            ).mappings().first()
        if row is None:
            return None
        at = at or timeutil.now_jst()
        if row["expires_at"] is not None and at >= row["expires_at"]:
            return None
        if row["last_used_at"] is None or at - row["last_used_at"] >= LAST_USED_RESOLUTION:
            with self._tx() as conn:
                conn.execute(update(keys).where(keys.c.key_id == row["key_id"]).values(last_used_at=at))
        if row["user_id"] is None:  # a key from before users had keys
            role: Role = "admin" if row["customer_id"] is None else "operator"
            customer_id = row["customer_id"]
        elif row["owner"] is None:
            return None  # its user was deleted
        else:
            role = _role(row["role"], row["user_customer"])
            customer_id = row["user_customer"]
        return Principal(key_id=row["key_id"], customer_id=customer_id, role=role,
                         can_write=role != "viewer" and (row["scope"] or "write") == "write")

    # ---- console users ---------------------------------------------------------------------------
    def create_user(self, *, username: str, password: str, created_at: datetime, customer_id: str | None = None,
                    language: str = "ja", role: Role | None = None) -> User:
        """Add a console user. Without a role: no customer makes an admin, a customer its operator.
        Refuses a taken name, a weak password, or a role that does not fit the customer."""
        _check_user_fields(username, password, language)
        role = role or ("admin" if customer_id is None else "operator")
        check_role(role, customer_id)
        password_hash = generate_password_hash(password)  # slow on purpose: outside the transaction
        try:
            with self._tx() as conn:
                user_id = conn.execute(insert(t.users).values(
                    username=username, password_hash=password_hash, customer_id=customer_id,
                    language=language, created_at=created_at, role=role, failed_logins=0,
                )).inserted_primary_key[0]  # type: ignore[index]
        except RegistryError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise RegistryError(f"user {username!r} exists already or customer {customer_id!r} is unknown") \
                    from exc
            raise
        return User(user_id=int(user_id), username=username, customer_id=customer_id, language=language, role=role)

    def ensure_user(self, *, username: str, password: str, created_at: datetime,
                    customer_id: str | None = None) -> User:
        """Make sure the user exists with this password (for users configured by settings)."""
        found = self.verify_user(username, password)
        if found is not None:
            return found
        existing = self.get_user(username)
        if existing is None:
            return self.create_user(username=username, password=password, created_at=created_at,
                                    customer_id=customer_id)
        self.set_password(username, password)
        return existing

    def set_password(self, username: str, password: str) -> None:
        _check_user_fields(username, password, "ja")
        password_hash = generate_password_hash(password)
        with self._tx() as conn:
            result = conn.execute(update(t.users).where(t.users.c.username == username)
                                  .values(password_hash=password_hash))
        if not result.rowcount:
            raise RegistryError(f"no user {username!r}")

    def get_user(self, username: str) -> User | None:
        with self._tx() as conn:
            row = conn.execute(select(t.users).where(t.users.c.username == username)).mappings().first()
        return None if row is None else _user(row)

    def get_user_by_id(self, user_id: int) -> User | None:
        with self._tx() as conn:
            row = conn.execute(select(t.users).where(t.users.c.user_id == user_id)).mappings().first()
        return None if row is None else _user(row)

    def verify_user(self, username: str, password: str) -> User | None:
        """The user when the password matches, else None (unknown users cost the same hash check)."""
        with self._tx() as conn:
            row = conn.execute(select(t.users).where(t.users.c.username == username)).mappings().first()
        if row is None:
            check_password_hash(_DUMMY_HASH, password)  # same work as a real check: names do not leak by timing
            return None
        return _user(row) if check_password_hash(row["password_hash"], password) else None

    def update_user(self, username: str, *, role: Role | None = None, customer_id: str | None = _UNCHANGED,
                    language: str | None = None, password: str | None = None) -> User:
        """Change what is given of a user's role, customer (None: no customer), language and password;
        the result must still be a role that fits its customer (`check_role`)."""
        current = self.get_user(username)
        if current is None:
            raise RegistryError(f"no user {username!r}")
        new_role = role or current.role
        new_customer = current.customer_id if customer_id is _UNCHANGED else customer_id
        new_language = language or current.language
        _check_user_fields(username, password or "x" * MIN_PASSWORD_LENGTH, new_language)
        check_role(new_role, new_customer)
        values: dict[str, Any] = {"role": new_role, "customer_id": new_customer, "language": new_language}
        if password is not None:
            values["password_hash"] = generate_password_hash(password)
        with self._tx() as conn:
            require_customer(conn, new_customer)
            conn.execute(update(t.users).where(t.users.c.username == username).values(**values))
        return User(user_id=current.user_id, username=username, customer_id=new_customer, language=new_language,
                    role=new_role, locked_until=current.locked_until)

    # ---- login lockout ---------------------------------------------------------------------------
    # Kept in the users table, not in a process's memory, so every API worker sees the same count and
    # an admin's unlock takes effect everywhere.
    def sign_in(self, username: str, password: str, at: datetime,
                policy: LockoutPolicy = LockoutPolicy()) -> SignIn:
        """Check a console login against the lockout, then the password; count a failure (locking the
        user after `policy.max_failures` within `policy.window`) or clear the count on success. A
        locked-out user's password is not checked at all, so guessing on gets nowhere."""
        users = t.users
        with self._tx() as conn:
            row = conn.execute(select(users).where(users.c.username == username)).mappings().first()
        if row is None:
            check_password_hash(_DUMMY_HASH, password)
            return SignIn(user=None)
        if row["locked_until"] is not None and at < row["locked_until"]:
            return SignIn(user=None, locked_until=row["locked_until"])
        if check_password_hash(row["password_hash"], password):
            if row["failed_logins"] or row["locked_until"] is not None:
                with self._tx() as conn:
                    conn.execute(update(users).where(users.c.user_id == row["user_id"])
                                 .values(failed_logins=0, first_failed_at=None, locked_until=None))
            return SignIn(user=_user({**row, "locked_until": None}))
        first = row["first_failed_at"]
        # A failure outside the window (or after a lock ran out) starts a new count.
        fresh = first is None or at - first >= policy.window or row["locked_until"] is not None
        failures = 1 if fresh else int(row["failed_logins"] or 0) + 1
        locked_until = at + policy.lock_for if failures >= policy.max_failures else None
        with self._tx() as conn:
            conn.execute(update(users).where(users.c.user_id == row["user_id"]).values(
                failed_logins=failures, first_failed_at=at if fresh else first, locked_until=locked_until))
        return SignIn(user=None, locked_until=locked_until)

    def unlock_user(self, username: str) -> bool:
        """Lift a user's lockout and forget its failures; False for no such user."""
        with self._tx() as conn:
            result = conn.execute(update(t.users).where(t.users.c.username == username)
                                  .values(failed_logins=0, first_failed_at=None, locked_until=None))
        return bool(result.rowcount)

    def delete_user(self, username: str) -> bool:
        with self._tx() as conn:
            result = conn.execute(delete(t.users).where(t.users.c.username == username))
        return bool(result.rowcount)

    def list_users(self) -> list[User]:
        with self._tx() as conn:
            rows = conn.execute(select(t.users).order_by(t.users.c.username)).mappings().all()
        return [_user(row) for row in rows]

    # ---- shared secrets --------------------------------------------------------------------------
    def shared_secret(self, name: str) -> str:
        """A random secret created once and then read by every process (e.g. the session signing key)."""
        with self._tx() as conn:
            value = conn.execute(select(t.shared_secrets.c.value).where(t.shared_secrets.c.name == name)).scalar()
            if value is not None:
                return str(value)
        try:
            with self._tx() as conn:
                conn.execute(insert(t.shared_secrets).values(name=name, value=secrets.token_hex(32)))
        except RegistryError:
            pass  # another process created it first; read theirs
        with self._tx() as conn:
            return str(conn.execute(select(t.shared_secrets.c.value)
                                    .where(t.shared_secrets.c.name == name)).scalar_one())


_DUMMY_HASH = generate_password_hash("not a password of anyone")


def _check_user_fields(username: str, password: str, language: str) -> None:
    if not USERNAME.match(username):
        raise RegistryError("a username is 1-64 letters, digits or _ . @ -")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise RegistryError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if language not in LANGUAGES:
        raise RegistryError(f"language must be one of {', '.join(LANGUAGES)}")


def check_role(role: str, customer_id: str | None) -> None:
    """An admin has no customer; a viewer has exactly one; an operator one or none (all)."""
    if role not in ROLES:
        raise RegistryError(f"a role is one of {', '.join(ROLES)}, not {role!r}")
    if role == "admin" and customer_id is not None:
        raise RegistryError("an admin belongs to no customer")
    if role == "viewer" and customer_id is None:
        raise RegistryError("a viewer reads one customer's plants: give its customer")


def _role(stored: str | None, customer_id: str | None) -> Role:
    if stored in ROLES:
        return stored  # type: ignore[return-value]
    return "admin" if customer_id is None else "operator"  # a row from before roles (v7)


def _api_key(row: Any) -> ApiKey:
    return ApiKey(key_id=row["key_id"], label=row["label"], customer_id=row["customer_id"],
                  created_at=row["created_at"], revoked=bool(row["revoked"]), user_id=row["user_id"],
                  scope=row["scope"] or "write", expires_at=row["expires_at"], last_used_at=row["last_used_at"])


def _user(row: object) -> User:
    mapping = dict(row)  # type: ignore[call-overload]
    return User(user_id=int(mapping["user_id"]), username=mapping["username"], customer_id=mapping["customer_id"],
                language=mapping["language"], role=_role(mapping.get("role"), mapping["customer_id"]),
                locked_until=mapping.get("locked_until"))
