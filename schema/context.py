"""The per-request context: the request, the signed-in viewer, services and loaders."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.websockets import WebSocket

from app.errors import DomainError, ErrorCode
from app.services import Services
from app.services.accounts import AccountService, Viewer
from app.settings import Settings
from schema.loaders import Loaders


@dataclass(slots=True)
class Context:
    request: Request | WebSocket
    services: Services
    viewer: Viewer | None
    _loaders: Loaders | None = field(default=None, init=False)

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
