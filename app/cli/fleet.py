"""`holdfast fleet` (app/hosting/fleet.py) and `holdfast dns` (app/hosting/dns.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli.common import T, _database, _run, _settings, cli
from app.settings import Settings

if TYPE_CHECKING:
    from app.hosting.fleet import FleetPlan

# --- fleet (app/hosting/fleet.py) --------------------------------------------------------

fleet_cli = typer.Typer(
    help="The fleet of machines at a compute configuration: plan, apply, status, destroy."
)
cli.add_typer(fleet_cli, name="fleet")

_COMPUTE_OPTION = typer.Option(
    "--compute", help="The compute configuration (default: compute.active)."
)


def _compute_name(settings: Settings, compute: str | None) -> str:
    """The configuration asked for, or the active one; exit 2 naming the choices if none."""
    name = compute or settings.compute.active
    known = ", ".join(sorted(settings.compute.providers)) or "none"
    if name is None:
        typer.echo(
            "holdfast: no compute configuration given and compute.active is not set "
            f"(configured: {known})",
            err=True,
        )
        raise typer.Exit(2)
    if name not in settings.compute.providers:
        typer.echo(f"holdfast: no compute configuration {name!r} (configured: {known})", err=True)
        raise typer.Exit(2)
    return name


def _fleet_run(make: Callable[[], Awaitable[T]]) -> T:
    """Run a fleet command: a vendor failure exits 1 with its message, a configuration
    error 2."""
    from app.hosting.fleet import FleetError
    from providers.errors import ConfigurationError, ProviderError

    try:
        return _run(make)
    except (ConfigurationError, FleetError) as exc:
        typer.echo(f"holdfast: {exc}", err=True)
        raise typer.Exit(2) from None
    except ProviderError as exc:
        typer.echo(f"holdfast: the compute provider failed: {exc}", err=True)
        raise typer.Exit(1) from None


async def _plan(settings: Settings, name: str) -> FleetPlan:
    """What `fleet apply` would do at compute configuration `name`, read from the vendor."""
    from app.hosting import fleet

    provider = fleet.open_compute(settings, name)
    try:
        return await fleet.plan(settings, name, provider)
    finally:
        await provider.close()


@fleet_cli.command("plan")
def fleet_plan(
    compute: Annotated[str | None, _COMPUTE_OPTION] = None,
) -> None:
    """Show what `fleet apply` would create and destroy; changes nothing."""

    settings = _settings()
    name = _compute_name(settings, compute)

    typer.echo(_fleet_run(lambda: _plan(settings, name)).render())


@fleet_cli.command("apply")
def fleet_apply(
    compute: Annotated[str | None, _COMPUTE_OPTION] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Apply without asking.")] = False,
) -> None:
    """Converge the fleet to its settings (create missing nodes, replace broken ones,
    destroy surplus ones; never a node without our tags), then record every node in the
    database. Idempotent: run it again after an interruption."""
    from app.hosting import fleet
    from providers.errors import ProviderError

    settings = _settings()
    name = _compute_name(settings, compute)

    planned = _fleet_run(lambda: _plan(settings, name))
    typer.echo(planned.render())
    # Asked between two event loops, never inside one: a prompt blocks the loop's thread.
    if planned.changes and not yes and not typer.confirm("Apply these changes?"):
        raise typer.Exit(1)

    async def run() -> tuple[fleet.FleetPlan, list[str]]:
        provider = fleet.open_compute(settings, name)
        try:
            failed: ProviderError | None = None
            try:
                done = await fleet.apply(settings, name, provider, planned=planned)
            except ProviderError as exc:
                # What was created before the failure is recorded all the same.
                failed, done = exc, planned
            async with _database(settings, role="fleet apply"):
                rows = await fleet.record(name, provider, settings.fleet.name)
            if failed is not None:
                raise failed
            return done, [f"{row.name} {row.external_id} {row.state}" for row in rows]
        finally:
            await provider.close()

    done, rows = _fleet_run(run)
    typer.echo(f"created {len(done.create)}, destroyed {len(done.destroy)}")
    typer.echo(f"recorded {len(rows)} nodes")


@fleet_cli.command("destroy")
def fleet_destroy(
    compute: Annotated[str | None, _COMPUTE_OPTION] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Destroy without asking.")] = False,
) -> None:
    """Destroy this deployment's fleet at a compute configuration: every node carrying our
    fleet and configuration tags, nothing else (machines made by hand or by another
    deployment stay), then record them as destroyed in the database."""
    from app.hosting import fleet
    from providers.compute.base import Node
    from providers.errors import ProviderError

    settings = _settings()
    name = _compute_name(settings, compute)

    async def listed() -> list[Node]:
        provider = fleet.open_compute(settings, name)
        try:
            return await provider.list_nodes(fleet.fleet_tags(settings.fleet.name, name))
        finally:
            await provider.close()

    nodes = _fleet_run(listed)
    typer.echo(f"compute {name}: {len(nodes)} to destroy")
    for node in nodes:
        typer.echo(f"  - {node.name}  {node.id} {node.state.value}")
    if not nodes:
        return
    # Asked between two event loops, never inside one: a prompt blocks the loop's thread.
    if not yes and not typer.confirm("Destroy these nodes?"):
        raise typer.Exit(1)

    async def run() -> int:
        provider = fleet.open_compute(settings, name)
        try:
            failed: ProviderError | None = None
            try:
                # Exactly the nodes shown and confirmed, not whatever is listed by now.
                for node in nodes:
                    await provider.destroy_node(node.id)
            except ProviderError as exc:
                failed = exc  # what was destroyed before the failure is recorded
            async with _database(settings, role="fleet destroy"):
                rows = await fleet.record(name, provider, settings.fleet.name)
            if failed is not None:
                raise failed
            return len(rows)
        finally:
            await provider.close()

    left = _fleet_run(run)
    typer.echo(f"destroyed {len(nodes)}; {left} of our nodes still listed")


@fleet_cli.command("status")
def fleet_status(
    compute: Annotated[str | None, _COMPUTE_OPTION] = None,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Ask the vendor first and record what it says.")
    ] = False,
) -> None:
    """The nodes recorded at a compute configuration (as last seen by `fleet apply` or
    `--refresh`), one per line: role, name, state, public address, vendor id, last seen."""
    from app.hosting import fleet

    settings = _settings()
    name = _compute_name(settings, compute)

    async def run() -> list[str]:
        async with _database(settings, role="fleet status" if refresh else None):
            if refresh:
                provider = fleet.open_compute(settings, name)
                try:
                    await fleet.record(name, provider, settings.fleet.name)
                finally:
                    await provider.close()
            rows = await fleet.recorded(name)
            return [
                "\t".join(
                    (
                        row.role,
                        row.name,
                        row.state,
                        (row.public_ips or ["-"])[0],
                        row.external_id,
                        row.seen_at.isoformat(timespec="seconds"),
                    )
                )
                for row in rows
            ]

    lines = _fleet_run(run)
    typer.echo(f"compute {name}: {len(lines)} nodes")
    for line in lines:
        typer.echo(line)


# --- dns -----------------------------------------------------------------------------------

dns_cli = typer.Typer(help="DNS: the records pointing the service's names at its web nodes.")
cli.add_typer(dns_cli, name="dns")


@dns_cli.command("export")
def dns_export(
    dns: Annotated[
        str | None,
        typer.Option("--dns", help="The DNS configuration (default: dns.active, or the only one)."),
    ] = None,
    zone: Annotated[
        str | None, typer.Option("--zone", help="The zone (default: dns.zone).")
    ] = None,
) -> None:
    """Print the zone as a BIND zone file: keep it, to recreate the zone at another DNS
    vendor (most import this format) if this one goes away."""
    from app.hosting.dns import open_dns
    from providers.errors import ConfigurationError, ProviderError

    settings = _settings()
    configured = sorted(settings.dns.providers)
    name = dns or settings.dns.active or (configured[0] if len(configured) == 1 else None)
    if name is None:
        known = ", ".join(configured) or "none"
        typer.echo(
            f"holdfast: name the DNS configuration with --dns (configured: {known})", err=True
        )
        raise typer.Exit(2)
    zone_name = zone or settings.dns.zone
    if zone_name is None:
        typer.echo("holdfast: name the zone with --zone (dns.zone is not set)", err=True)
        raise typer.Exit(2)

    async def run() -> str:
        provider = open_dns(settings, name)
        try:
            return await provider.export_zone(zone_name)
        finally:
            await provider.close()

    try:
        text = _run(run)
    except ConfigurationError as exc:
        typer.echo(f"holdfast: {exc}", err=True)
        raise typer.Exit(2) from None
    except ProviderError as exc:
        typer.echo(f"holdfast: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(text, nl=False)
    skipped = sum(1 for line in text.splitlines() if line.startswith("; skipped "))
    if skipped:
        typer.echo(
            f"holdfast: {skipped} record values could not be read and were left out "
            "(see the `; skipped` lines)",
            err=True,
        )
