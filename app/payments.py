"""The configured payment processors, opened once when the application is built.

Each name of `HOLDFAST_PAYMENTS__PROVIDERS` is a provider of `providers/payments` with its
options; a subscription records the name it pays through, never the vendor, so an operator
who changes a configuration's vendor settings keeps every subscriber's record. A name that was
removed from the settings (a processor already left) is simply not here: the ledger still
holds everything about its subscribers, and nothing that decides access needs it.
"""

from __future__ import annotations

from app.settings import PaymentSettings
from providers import registry
from providers.payments.base import PaymentProvider

COMPLIMENTARY = "complimentary"
"""The provider name of subscriptions an admin granted (no processor)."""


class Payments:
    def __init__(self, settings: PaymentSettings) -> None:
        self.settings = settings
        self.providers: dict[str, PaymentProvider] = registry.load_each(
            "payments", settings.providers, where="payments.providers"
        )

    def get(self, name: str) -> PaymentProvider:
        """The provider configured as `name`; LookupError when there is none (any more)."""
        try:
            return self.providers[name]
        except KeyError:
            raise LookupError(f"payment configuration {name!r} is not configured") from None

    def kind(self, name: str) -> str | None:
        """The registry name of the provider configured as `name` (`manual`), if configured."""
        configured = self.settings.providers.get(name)
        return configured.provider if configured is not None else None

    def accepting(self) -> list[str]:
        """The names new subscribers may pay through."""
        return [name for name, c in self.settings.providers.items() if c.accept_new]

    async def close(self) -> None:
        for provider in self.providers.values():
            await provider.close()
