"""The per-request context: the request, the signed-in viewer, services and loaders.

Over a WebSocket, strawberry builds one context per connection; every operation on it runs
with its own copy (`for_operation`), so that one operation's loaders (and a viewer it signs
in) never leak into another, and a subscription takes fresh loaders for every event it
delivers (`fresh_loaders`), so that nothing it caches outlives the event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.websockets import WebSocket

from app.auth import AccessClaims
from app.errors import DomainError, ErrorCode
from app.services import Services
from app.services.accounts import AccountService, Viewer
from app.settings import Settings
from schema.loaders import Loaders
from schema.socket import LiveSocket


@dataclass(slots=True)
class Context:
    request: Request | WebSocket
    services: Services
    viewer: Viewer | None
    socket: LiveSocket | None = None  # over a WebSocket: the connection
    connection_params: Any = None  # over a WebSocket: the connection_init payload
    # Over HTTP: the verified claims of the request's access token, whose session is not
    # checked yet: `sign_in` does that (the runner, before an operation runs), or an
    # operation that folds the check into its own statement (schema.runner SESSION_FOLDED).
    claims: AccessClaims | None = None
    _loaders: Loaders | None = field(default=None, init=False)

    async def sign_in(self) -> None:
        """Resolve the viewer of the token's claims (one statement): the viewer when the
        session is open, none when it is not (a logged-out session reads as signed out)."""
        claims = self.claims
        if claims is not None and self.viewer is None:
            self.claims = None
            self.viewer = await self.services.accounts.viewer_of(claims)

    @property
    def budget_id(self) -> int | None:
        """Whose request budget a request spends: its viewer's, or (before the session is
        checked) its token's user's; None signed out (then the client address's)."""
        if self.viewer is not None:
            return int(self.viewer.user.id)
        return self.claims.user_id if self.claims is not None else None

    def for_operation(self) -> Context:
        """A copy for one operation on a WebSocket connection."""
        return Context(self.request, self.services, self.viewer, self.socket)

    def fresh_loaders(self) -> None:
        self._loaders = None

    @property
    def loaders(self) -> Loaders:
        # Made on first use: most requests on the hot paths need none.
        if self._loaders is None:
            self._loaders = Loaders(self.services, self.viewer_id)
        return self._loaders

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def accounts(self) -> AccountService:
        return self.services.accounts

    def require_viewer(self) -> Viewer:
        """The signed-in viewer; NOT_AUTHENTICATED (a typed error) when signed out."""
        if self.viewer is None:
            raise DomainError(ErrorCode.NOT_AUTHENTICATED, "Sign in first.")
        return self.viewer

    @property
    def viewer_id(self) -> int | None:
        return self.viewer.user.id if self.viewer else None

    @property
    def client_ip(self) -> str | None:
        return self.request.client.host if self.request.client else None

    @property
    def user_agent(self) -> str:
        return self.request.headers.get("user-agent", "")
