"""Per-request DataLoaders, named <thing>_by_<key>; made fresh for every request."""

from __future__ import annotations

from strawberry.dataloader import DataLoader

from app.models import User
from app.services.accounts import AccountService


class Loaders:
    def __init__(self, accounts: AccountService) -> None:
        async def load_users(ids: list[int]) -> list[User | None]:
            found = await accounts.users_by_ids(ids)
            return [found.get(user_id) for user_id in ids]

        self.user_by_id: DataLoader[int, User | None] = DataLoader(load_users)
