"""The per-request context: the request, the signed-in viewer, services and loaders."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.websockets import WebSocket

from app.services.accounts import AccountService, Viewer
from app.settings import Settings
from schema.loaders import Loaders


@dataclass(slots=True)
class Context:
    request: Request | WebSocket
    settings: Settings
    accounts: AccountService
    viewer: Viewer | None
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.accounts)

    @property
    def client_ip(self) -> str | None:
        return self.request.client.host if self.request.client else None

    @property
    def user_agent(self) -> str:
        return self.request.headers.get("user-agent", "")
