"""`holdfast payments`: plans at the processors, missed events, moving subscribers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from app.cli.common import _run, _services, _settings, cli

if TYPE_CHECKING:
    from app.services.billing_switch import SwitchReport


payments_cli = typer.Typer(
    help="Premium subscriptions: plans at the processors, missed events, moving subscribers "
    "to another processor."
)
cli.add_typer(payments_cli, name="payments")


def _unknown_configuration(names: list[str], known: list[str]) -> None:
    unknown = [name for name in names if name not in known]
    if unknown:
        configured = ", ".join(known) or "none"
        typer.echo(
            f"holdfast: no payment configuration {unknown[0]!r} (configured: {configured})",
            err=True,
        )
        raise typer.Exit(2)


@payments_cli.command("sync")
def payments_sync(
    provider: Annotated[
        list[str] | None,
        typer.Option("--provider", help="Only this configuration (repeatable; default: all)."),
    ] = None,
) -> None:
    """Copy the configured plans into the ledger and create or update the matching objects
    at each payment provider (idempotent: run it after changing plans)."""
    settings = _settings()
    _unknown_configuration(provider or [], list(settings.payments.providers))

    async def sync() -> tuple[int, dict[str, dict[str, str]]]:
        async with _services(settings, role="payments sync") as services:
            result = await services.billing.sync(provider or None)
            return len(await services.billing.plans()), result

    plans, result = _run(sync)
    typer.echo(f"plans: {plans}")
    for name, ids in result.items():
        typer.echo(f"{name}: {len(ids)} objects at the provider")


@payments_cli.command("reconcile")
def payments_reconcile(
    provider: Annotated[
        str | None, typer.Option("--provider", help="Only this configuration (default: all).")
    ] = None,
) -> None:
    """Pull each provider's events since the last one seen and apply those missed (webhooks
    that never arrived); prints how many were new."""
    settings = _settings()
    names = [provider] if provider is not None else list(settings.payments.providers)
    _unknown_configuration(names, list(settings.payments.providers))

    async def reconcile() -> dict[str, int]:
        async with _services(settings, role="payments reconcile") as services:
            counts = {name: await services.billing.ledger.reconcile(name) for name in names}
            # Apply what was recorded now, as a worker would a moment later.
            await services.jobs.run_due(services.changes)
            return counts

    for name, new in _run(reconcile).items():
        typer.echo(f"{name}: {new} new events")


@payments_cli.command("migrate")
def payments_migrate(
    source: Annotated[str, typer.Option("--from", help="The configuration being left.")],
    target: Annotated[str, typer.Option("--to", help="The configuration to move to.")],
) -> None:
    """Move every subscriber of one payment configuration to another: their subscriptions
    renew no more (the old provider is told so by retried jobs, and the move goes on when it
    does not answer), they keep access to the end of what they paid, and each is asked to
    subscribe again through the new one. Idempotent: run it again to mark newcomers and see
    who has moved. Set the old configuration's accept_new to false first."""
    _switch(source, target, migrate=True)


@payments_cli.command("report")
def payments_report(
    source: Annotated[str, typer.Option("--from", help="The configuration being left.")],
    target: Annotated[str, typer.Option("--to", help="The configuration moved to.")],
) -> None:
    """Who of a move's subscribers has subscribed through the new configuration, and who has
    not yet (with when their access ends); changes nothing."""
    _switch(source, target, migrate=False)


def _switch(source: str, target: str, *, migrate: bool) -> None:
    from app.errors import DomainError
    from app.models import Subscription

    settings = _settings()
    _unknown_configuration([target], list(settings.payments.providers))

    async def run() -> tuple[SwitchReport, dict[int, str]]:
        from app.models import User

        role = "payments migrate" if migrate else None
        async with _services(settings, role=role) as services:
            # A configuration already removed from the settings may still have subscribers.
            if source not in services.payments.providers and not await Subscription.exists(
                provider=source
            ):
                _unknown_configuration([source], list(services.payments.providers))
            if migrate:
                report = await services.billing.switch.run(source, target)
            else:
                report = await services.billing.switch.report(source, target)
            ids = {u for u, _ in report.moved} | {u for u, _, _ in report.waiting}
            names = dict(await User.filter(id__in=list(ids)).values_list("id", "username"))
            return report, names

    try:
        report, names = _run(run)
    except DomainError as exc:
        typer.echo(f"holdfast: {exc.message}", err=True)
        raise typer.Exit(2) from None
    if migrate:
        typer.echo(f"marked {report.marked} subscriptions of {source} to go on through {target}")
    typer.echo(f"moved to {target}: {len(report.moved)}")
    for user_id, sub_id in report.moved:
        typer.echo(f"  {names.get(user_id, '?')} (user {user_id}): subscription {sub_id}")
    typer.echo(f"not yet: {len(report.waiting)}")
    for user_id, _, until in report.waiting:
        when = until.isoformat(timespec="seconds") if until is not None else "-"
        typer.echo(f"  {names.get(user_id, '?')} (user {user_id}): access until {when}")
