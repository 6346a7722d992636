"""Accounts: sign-up, sign-in sessions with rotating refresh tokens, profile, roles."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from email_validator import EmailNotValidError, validate_email
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q

from app import auth, live, sql
from app.changes import Change, Changes
from app.errors import DomainError, ErrorCode
from app.models import MediaPurpose, RefreshToken, Role, Session, User
from app.ratelimit import RateLimiter
from app.services.media import UNCHANGED, Unchanged, check_profile_media
from app.services.media_purge import purge_media
from app.services.relations import blocked_among
from app.settings import Settings
from app.text import TextRule, clean_text, fold, has_forbidden_chars, has_lone_surrogates

USERNAME_MAX = 30
USERNAME_RE = re.compile(rf"[A-Za-z0-9_]{{3,{USERNAME_MAX}}}")
PASSWORD_MIN, PASSWORD_MAX = 8, 1_024
DISPLAY_NAME_MAX, BIO_MAX = 50, 300
# The longest email address SMTP carries (RFC 5321 path limit), hence the longest login.
EMAIL_MAX = LOGIN_MAX = 254
# Refresh tokens are 43 characters (256 bits, URL-safe base64); anything far longer is not one.
REFRESH_TOKEN_MAX = 128
DISPLAY_NAME = TextRule(
    field="displayName",
    label="Display names",
    max_length=DISPLAY_NAME_MAX,
    required=True,
    allow_bidi=False,
)
BIO = TextRule(field="bio", label="Bios", max_length=BIO_MAX, multiline=True)
RESERVED_USERNAMES = frozenset(
    (
        "abuse",
        "about",
        "admin",
        "administrator",
        "anonymous",
        "api",
        "app",
        "auth",
        "billing",
        "everyone",
        "explore",
        "graphql",
        "help",
        "here",
        "holdfast",
        "home",
        "info",
        "login",
        "logout",
        "me",
        "mod",
        "moderator",
        "moderators",
        "null",
        "official",
        "postmaster",
        "privacy",
        "register",
        "root",
        "security",
        "settings",
        "signin",
        "signup",
        "staff",
        "status",
        "support",
        "system",
        "terms",
        "undefined",
        "webmaster",
        "www",
    )
)


_PUBLIC_CHILDREN = (
    "SELECT COUNT(*) FROM posts c WHERE c.{column} = posts.id AND c.author_id = :user "
    "AND c.visibility = 'public' AND c.deleted_at IS NULL"
)
_UNCOUNT_ACCOUNT = (
    "UPDATE users SET follower_count = follower_count - 1 "
    "WHERE id IN (SELECT followee_id FROM follows WHERE follower_id = :user)",
    "UPDATE users SET following_count = following_count - 1 "
    "WHERE id IN (SELECT follower_id FROM follows WHERE followee_id = :user)",
    "UPDATE posts SET like_count = like_count - 1 "
    "WHERE id IN (SELECT post_id FROM likes WHERE user_id = :user)",
    "UPDATE posts SET repost_count = repost_count - 1 "
    "WHERE id IN (SELECT post_id FROM reposts WHERE user_id = :user)",
    *(
        f"UPDATE posts SET {count} = {count} - ({_PUBLIC_CHILDREN.format(column=column)}) "
        f"WHERE id IN (SELECT {column} FROM posts WHERE author_id = :user "
        "AND visibility = 'public' AND deleted_at IS NULL)"
        for count, column in (("reply_count", "reply_to_id"), ("quote_count", "quote_of_id"))
    ),
)


@cache
def _common_passwords() -> frozenset[str]:
    # The 30,000 most common passwords of leaked sets, as shipped with zxcvbn.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in account of a request and the session it signed in with."""

    user: User
    session_id: int
    # When the access token it presented stops working (None: not known here).
    access_expires_at: datetime | None = None

    @property
    def is_admin(self) -> bool:
        return self.user.role is Role.ADMIN


# The one rule of a signed-in request: the token's session is open (not revoked: logging out
# revokes it, and the next request of any process sees that) and is the token's user's. As a
# FROM clause binding `u` to that user (no row when the session is not open): the viewer
# lookup above reads it alone; a hot read may join it into its own statement (one statement
# per request instead of two), with :session and :user from the verified token.
OPEN_SESSION_USER = (
    "sessions s JOIN users u ON u.id = s.user_id "
    "WHERE s.id = :session AND s.user_id = :user AND s.revoked_at IS NULL"
)


def viewer_from_row(row: Mapping[str, Any], claims: auth.AccessClaims) -> Viewer:
    """The viewer from a users row (the columns of `u` under OPEN_SESSION_USER)."""
    # Built the way the ORM builds a fetched row, so services can save it as usual.
    return Viewer(User._init_from_db(**row), claims.session_id, claims.expires_at)


@dataclass(frozen=True, slots=True)
class SessionTokens:
    session_id: int
    access_token: str
    access_token_expires_at: datetime
    refresh_token: str
    refresh_token_expires_at: datetime


@dataclass(frozen=True, slots=True)
class SignedIn:
    user: User
    tokens: SessionTokens

    @property
    def viewer(self) -> Viewer:
        return Viewer(self.user, self.tokens.session_id)


def _now() -> datetime:
    return datetime.now(UTC)


def is_username(value: str) -> bool:
    """Whether some account could have this username (or username key)."""
    return len(value) <= USERNAME_MAX and USERNAME_RE.fullmatch(value) is not None


def validate_username(username: str) -> str:
    if not is_username(username):
        raise DomainError(
            ErrorCode.INVALID_USERNAME,
            "Usernames are 3 to 30 letters, digits or underscores.",
            "username",
        )
    if username.lower() in RESERVED_USERNAMES:
        raise DomainError(ErrorCode.INVALID_USERNAME, "This username is reserved.", "username")
    return username


def username_key(username: str) -> str:
    """The one spelling of a username that look-ups and uniqueness use."""
    return fold(username).strip()


def normalise_email(email: str) -> str:
    """The one spelling of an email address that is stored, compared and signed in with:
    folded (full-width, compatibility and upper-case spellings are one), then normalised by
    email_validator (IDNA domains in their Unicode form)."""
    if len(email) > 2 * EMAIL_MAX or has_forbidden_chars(email):
        # Refused before the validator works through it (and before any look-up).
        raise DomainError(ErrorCode.INVALID_EMAIL, "This is not an email address.", "email")
    try:
        info = validate_email(fold(email).strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise DomainError(ErrorCode.INVALID_EMAIL, str(exc), "email") from None
    return info.normalized


def login_key(login: str) -> str:
    """The one spelling of what someone signs in with: an email as `normalise_email` has it,
    anything else as a username key. Never fails: an unusable login keeps its folded form, so
    it still has a counter of its own."""
    folded = username_key(login[:PASSWORD_MAX])
    if "@" in folded:
        try:
            return normalise_email(folded)
        except DomainError:
            return folded
    return folded


def validate_password(password: str, field: str = "password", *avoid: str) -> str:
    if len(password) < PASSWORD_MIN:
        raise DomainError(
            ErrorCode.WEAK_PASSWORD, f"Use at least {PASSWORD_MIN} characters.", field
        )
    if len(password) > PASSWORD_MAX:
        raise DomainError(ErrorCode.WEAK_PASSWORD, f"Use at most {PASSWORD_MAX} characters.", field)
    if has_forbidden_chars(password):
        raise DomainError(
            ErrorCode.WEAK_PASSWORD, "Passwords cannot contain control characters.", field
        )
    lowered = password.lower()
    if lowered in _common_passwords() or any(lowered == a.lower() for a in avoid if a):
        raise DomainError(
            ErrorCode.WEAK_PASSWORD, "This password is too common; choose another.", field
        )
    return password


def validate_display_name(display_name: str) -> str:
    return clean_text(display_name, DISPLAY_NAME)


def validate_bio(bio: str) -> str:
    return clean_text(bio, BIO)


def _could_be_password(password: str) -> bool:
    """Whether `password` could be any account's password (checked before hashing it): not
    longer than allowed, and encodable (a lone surrogate cannot be hashed). Control characters
    are refused for new passwords only, so passwords set before that rule still work."""
    return len(password) <= PASSWORD_MAX and not has_lone_surrogates(password)


def check_credentials(login: str, password: str) -> None:
    """Refuse, as wrong credentials, a login or password that no account can have, before
    any look-up: too long, or with control characters."""
    key = login.strip()
    if len(key) > LOGIN_MAX or has_forbidden_chars(key) or not _could_be_password(password):
        raise DomainError(ErrorCode.INVALID_CREDENTIALS, "Wrong username/email or password.")


def _check_confirmation(password: str, field: str) -> None:
    """A password given to confirm an action that cannot be the account's is wrong."""
    if not _could_be_password(password):
        raise DomainError(ErrorCode.WRONG_PASSWORD, "The password is wrong.", field)


def can_see_email(viewer: Viewer | None, user: User) -> bool:
    return viewer is not None and (viewer.user.id == user.id or viewer.is_admin)


@dataclass(frozen=True, slots=True)
class _NewAccount:
    """Sign-up input, checked and in its stored spelling."""

    username: str
    email: str
    password: str
    display_name: str

    @classmethod
    def checked(cls, username: str, email: str, password: str, display_name: str) -> _NewAccount:
        username = validate_username(username)
        email = normalise_email(email)
        validate_password(password, "password", username, email)
        return cls(username, email, password, validate_display_name(display_name))


def _account_key(user: User) -> str:
    """The sign-in counter of an account."""
    return f"user:{user.id}"


async def _end_sessions(change: Change, sessions: Q) -> int:
    """Revoke the open sessions matching `sessions` in the change's transaction; their sockets
    close, in every process, once it commits. Returns how many ended."""
    conn = change.conn
    ids: list[int] = await (
        Session.filter(sessions, revoked_at=None).using_db(conn).values_list("id", flat=True)
    )  # type: ignore[assignment]
    if not ids:
        return 0
    ended = (
        await Session.filter(id__in=ids, revoked_at=None).using_db(conn).update(revoked_at=_now())
    )
    live.publish_sessions_ended(change, ids)
    return ended


class AccountService:
    def __init__(self, settings: Settings, limiter: RateLimiter, changes: Changes) -> None:
        self._key = settings.signing_key()
        self._access_ttl = timedelta(seconds=settings.auth.access_token_ttl)
        self._refresh_ttl = timedelta(seconds=settings.auth.refresh_token_ttl)
        self._limiter = limiter
        self._changes = changes

    # --- sign-up and sign-in -------------------------------------------------------------

    async def create_user(
        self,
        *,
        username: str,
        email: str,
        password: str,
        display_name: str,
        role: Role = Role.USER,
    ) -> User:
        account = _NewAccount.checked(username, email, password, display_name)
        return await self._insert(account, role)

    async def sign_up(
        self,
        *,
        username: str,
        email: str,
        password: str,
        display_name: str,
        client_ip: str | None,
        user_agent: str = "",
    ) -> SignedIn:
        account = _NewAccount.checked(username, email, password, display_name)
        # Counted once the input is well-formed, before the look-ups that tell whether a
        # username or email is taken: mistyping costs nothing, probing for accounts does.
        if not await self._limiter.allow_signup(client_ip):
            raise DomainError(ErrorCode.RATE_LIMITED, "Too many sign-ups; try again later.")
        user = await self._insert(account, Role.USER)
        return SignedIn(user, await self._start_session(user, user_agent))

    async def log_in(
        self, *, login: str, password: str, client_ip: str | None, user_agent: str = ""
    ) -> SignedIn:
        check_credentials(login, password)
        key = login_key(login)
        user = await self._find_by_login(key)
        # One counter per account however it is spelled; an unknown login counts under its
        # normalised form, so guessing logins is limited as well.
        account_key = _account_key(user) if user is not None else f"login:{key}"
        if not await self._limiter.allow_attempt(account_key, client_ip):
            raise DomainError(ErrorCode.RATE_LIMITED, "Too many sign-in attempts; try again later.")
        # With no account, a dummy hash spends the same time, so timing tells nothing.
        check = await auth.check_password(user.password_hash if user else None, password)
        if user is None or not check.ok:
            raise DomainError(ErrorCode.INVALID_CREDENTIALS, "Wrong username/email or password.")
        if check.new_hash is not None:
            user.password_hash = check.new_hash
            await user.save(update_fields=["password_hash", "updated_at"])
        await self._limiter.reset_account(account_key)
        return SignedIn(user, await self._start_session(user, user_agent))

    async def refresh_session(self, refresh_token: str) -> SignedIn:
        """Trade a refresh token for new tokens. A token is good once: presenting a used one
        means it was stolen or replayed, so the whole session is revoked."""
        if len(refresh_token) > REFRESH_TOKEN_MAX or has_forbidden_chars(refresh_token):
            raise DomainError(ErrorCode.INVALID_TOKEN, "This session has ended; sign in again.")
        token = await RefreshToken.get_or_none(
            token_hash=auth.token_digest(refresh_token)
        ).select_related("session__user")
        if token is None or token.session.revoked_at is not None:
            raise DomainError(ErrorCode.INVALID_TOKEN, "This session has ended; sign in again.")
        now = _now()
        claimed = await RefreshToken.filter(id=token.id, used_at=None).update(used_at=now)
        if not claimed:
            async with self._changes.begin() as change:
                await _end_sessions(change, Q(id=token.session_id))
            raise DomainError(
                ErrorCode.TOKEN_REUSED, "This refresh token was already used; sign in again."
            )
        if token.expires_at <= now:
            raise DomainError(ErrorCode.TOKEN_EXPIRED, "This session has expired; sign in again.")
        session = token.session
        await Session.filter(id=session.id).update(last_used_at=now)
        return SignedIn(session.user, await self._issue_tokens(session.user, session.id, now))

    # --- the signed-in viewer ------------------------------------------------------------

    def access_claims(self, access_token: str) -> auth.AccessClaims | None:
        """The claims of a valid, unexpired access token (its session is not checked)."""
        return auth.read_access_token(self._key, access_token)

    async def resolve_viewer(self, access_token: str) -> Viewer | None:
        """The viewer of a valid access token whose session is still open: one statement."""
        claims = auth.read_access_token(self._key, access_token)
        return await self.viewer_of(claims) if claims is not None else None

    async def viewer_of(self, claims: auth.AccessClaims) -> Viewer | None:
        """The viewer of verified access-token claims, if their session is still open."""
        rows = await sql.fetch(
            f"SELECT u.* FROM {OPEN_SESSION_USER}",
            {"session": claims.session_id, "user": claims.user_id},
        )
        return viewer_from_row(rows[0], claims) if rows else None

    async def session_is_open(self, session_id: int) -> bool:
        return await Session.exists(id=session_id, revoked_at=None)

    async def log_out(self, viewer: Viewer) -> None:
        async with self._changes.begin() as change:
            await _end_sessions(change, Q(id=viewer.session_id))

    async def log_out_everywhere(self, viewer: Viewer) -> int:
        """Revoke every session of the viewer, this one included; returns how many."""
        async with self._changes.begin() as change:
            return await _end_sessions(change, Q(user_id=viewer.user.id))

    async def change_password(
        self, viewer: Viewer, *, current_password: str, new_password: str, client_ip: str | None
    ) -> None:
        user = viewer.user
        _check_confirmation(current_password, "currentPassword")
        await self._require_password(user, current_password, "currentPassword", client_ip)
        validate_password(new_password, "newPassword", user.username, user.email)
        new_hash = await auth.hash_password(new_password)
        async with self._changes.begin() as change:
            await (
                User.filter(id=user.id)
                .using_db(change.conn)
                .update(password_hash=new_hash, updated_at=_now())
            )
            await _end_sessions(change, Q(user_id=user.id) & ~Q(id=viewer.session_id))
        user.password_hash = new_hash

    async def delete_account(self, viewer: Viewer, *, password: str, client_ip: str | None) -> None:
        _check_confirmation(password, "password")
        await self._require_password(viewer.user, password, "password", client_ip)
        params = {"user": viewer.user.id}
        async with self._changes.begin() as change:
            conn = change.conn
            await _end_sessions(change, Q(user_id=viewer.user.id))
            # The rows of this account go with it (foreign keys cascade); first take them out
            # of the counters they are counted in on other accounts and posts.
            for statement in _UNCOUNT_ACCOUNT:
                await sql.execute(statement, params, conn)
            # Its media are found through their rows, so purged before the cascade takes them.
            await purge_media(change, owner_id=viewer.user.id)
            await User.filter(id=viewer.user.id).using_db(conn).delete()

    async def update_profile(
        self,
        viewer: Viewer,
        *,
        display_name: str | None = None,
        bio: str | None = None,
        is_locked: bool | None = None,
        avatar_id: int | Unchanged | None = UNCHANGED,
        header_id: int | Unchanged | None = UNCHANGED,
    ) -> User:
        """Change the given fields; a field left as None keeps its value (the avatar and
        header: left UNCHANGED; None removes them, and an avatar or header replaced or removed
        is purged)."""
        user = viewer.user
        changes: dict[str, object] = {}
        if display_name is not None:
            cleaned = validate_display_name(display_name)
            changes["display_name"] = cleaned
            changes["display_name_key"] = cleaned.casefold()
        if bio is not None:
            changes["bio"] = validate_bio(bio)
        if is_locked is not None:
            changes["is_locked"] = is_locked
        async with self._changes.begin() as change:
            conn = change.conn
            profile: dict[str, int | None] = {}
            for column, value, purpose, field in (
                ("avatar_id", avatar_id, MediaPurpose.AVATAR, "avatarId"),
                ("header_id", header_id, MediaPurpose.HEADER, "headerId"),
            ):
                if value is UNCHANGED:
                    continue
                if value is not None:
                    await check_profile_media(conn, user.id, value, purpose, field)
                profile[column] = value
            if not changes and not profile:
                return user
            # The media in use now, read under the row lock: concurrent updates each purge
            # only what they replaced.
            current = (
                await User.filter(id=user.id)
                .select_for_update()
                .using_db(conn)
                .first()
                .values("avatar_id", "header_id")
            )
            user.update_from_dict({**changes, **profile})
            await user.save(update_fields=[*changes, *profile, "updated_at"], using_db=conn)
            replaced = [
                old
                for column, new in profile.items()
                if current is not None and (old := current[column]) is not None and old != new
            ]
            if replaced:
                await purge_media(change, id__in=replaced)
        return user

    # --- look-ups ------------------------------------------------------------------------

    async def users_by_ids(self, viewer_id: int | None, ids: list[int]) -> dict[int, User]:
        """The accounts among `ids` that the viewer may see (blocks hide both ways)."""
        users = {user.id: user for user in await User.filter(id__in=ids)}
        if viewer_id is not None and users:
            for hidden in await blocked_among(viewer_id, list(users)):
                users.pop(hidden)
        return users

    async def user_by_username(self, viewer_id: int | None, username: str) -> User | None:
        """The account with this username (any spelling `username_key` folds to it) that the
        viewer may see. A name no account can have finds none, without a look-up."""
        key = username_key(username) if len(username) <= USERNAME_MAX else ""
        if not is_username(key):
            return None
        user = await User.get_or_none(username_key=key)
        if user is None:
            return None
        return (await self.users_by_ids(viewer_id, [user.id])).get(user.id)

    # --- helpers -------------------------------------------------------------------------

    async def _find_by_login(self, key: str) -> User | None:
        """The account of a `login_key`, if any (none, without a look-up, for a key that no
        account can have)."""
        if "@" in key:
            return await User.get_or_none(email=key) if len(key) <= EMAIL_MAX else None
        if not is_username(key):
            return None
        return await User.get_or_none(username_key=key)

    async def _insert(self, account: _NewAccount, role: Role) -> User:
        await self._ensure_available(account)
        try:
            return await User.create(
                username=account.username,
                username_key=username_key(account.username),
                email=account.email,
                password_hash=await auth.hash_password(account.password),
                display_name=account.display_name,
                display_name_key=account.display_name.casefold(),
                role=role,
            )
        except IntegrityError:
            # Lost a race with a concurrent sign-up: say which field now clashes.
            await self._ensure_available(account)
            raise

    async def _ensure_available(self, account: _NewAccount) -> None:
        if await User.exists(username_key=username_key(account.username)):
            raise DomainError(ErrorCode.USERNAME_TAKEN, "This username is taken.", "username")
        if await User.exists(email=account.email):
            raise DomainError(ErrorCode.EMAIL_TAKEN, "An account with this email exists.", "email")

    async def _require_password(
        self, user: User, password: str, field: str, client_ip: str | None
    ) -> None:
        # The same counter as signing in to this account.
        if not await self._limiter.allow_attempt(_account_key(user), client_ip):
            raise DomainError(ErrorCode.RATE_LIMITED, "Too many attempts; try again later.")
        if not (await auth.check_password(user.password_hash, password)).ok:
            raise DomainError(ErrorCode.WRONG_PASSWORD, "The password is wrong.", field)

    async def _start_session(self, user: User, user_agent: str) -> SessionTokens:
        # A header, not an input, but stored: kept short and printable.
        agent = "".join(ch for ch in user_agent[:255] if ch.isprintable())
        session = await Session.create(user=user, user_agent=agent)
        return await self._issue_tokens(user, session.id, _now())

    async def _issue_tokens(self, user: User, session_id: int, now: datetime) -> SessionTokens:
        access, access_expires = auth.issue_access_token(
            self._key, user.id, session_id, self._access_ttl, now
        )
        refresh = auth.new_refresh_token()
        refresh_expires = now + self._refresh_ttl
        await RefreshToken.create(
            session_id=session_id,
            token_hash=auth.token_digest(refresh),
            expires_at=refresh_expires,
        )
        return SessionTokens(session_id, access, access_expires, refresh, refresh_expires)
