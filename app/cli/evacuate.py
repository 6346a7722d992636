"""`holdfast evacuate --to NAME` (app/hosting/evacuate)."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.common import _run, _settings, cli

# --- evacuate ------------------------------------------------------------------------------


@cli.command()
def evacuate(
    to: Annotated[str, typer.Option("--to", help="The compute configuration to move to.")],
    source: Annotated[
        str | None,
        typer.Option("--from", help="The configuration being left (default: compute.active)."),
    ] = None,
    state: Annotated[
        str | None,
        typer.Option(
            "--state", help="The run's state file (default: data_dir/evacuation-<to>.json)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what each step would do; change nothing.")
    ] = False,
    restart: Annotated[
        bool, typer.Option("--restart", help="Begin a new run over a recorded one.")
    ] = False,
    old_gone: Annotated[
        bool,
        typer.Option(
            "--old-gone",
            help="The old vendor is gone for good: restore the latest backup, go on without "
            "media that cannot be copied, and mark its nodes unknown when it cannot be reached.",
        ),
    ] = False,
    dns_switched: Annotated[
        bool,
        typer.Option(
            "--dns-switched",
            help="No DNS configured: you pointed the domain at the new web nodes, so the old "
            "fleet may be destroyed.",
        ),
    ] = False,
    backup: Annotated[
        str | None,
        typer.Option("--backup", help="Restore this backup (an id of `holdfast backup list`)."),
    ] = None,
) -> None:
    """Bring the whole service up at another compute configuration and leave the current one:
    back up, restore, provision, wait until healthy, record, move media, switch DNS, destroy
    the old fleet. Resumable: each step is recorded, and a run stopped anywhere (a failing
    step: exit 1) resumes at the step not done. Bad input: exit 2, nothing changed."""
    from pathlib import Path

    from app.hosting import evacuate as evacuation
    from app.hosting.runbook import RunbookError, StepRecord, Stopped

    settings = _settings()
    try:
        request = evacuation.prepare(
            settings,
            to=to,
            source=source,
            state_path=Path(state) if state else None,
            old_gone=old_gone,
            dns_switched=dns_switched,
            backup_id=backup,
        )
    except evacuation.EvacuationError as exc:
        typer.echo(f"holdfast: {exc}", err=True)
        raise typer.Exit(2) from None
    if dry_run:
        try:
            recorded, planned = _run(lambda: evacuation.dry_run(request))
        except RunbookError as exc:
            typer.echo(f"holdfast: {exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo(
            f"dry run: evacuate {request.source} -> {request.target} "
            + (f"(resuming run {recorded.run_id})" if recorded else "(a new run)")
        )
        for number, step in enumerate(planned, 1):
            typer.echo(f"{number}. {step.name} [{step.status}]: {step.would}")
        typer.echo("nothing was changed")
        return
    names = list(evacuation.STEPS)

    def show(name: str, record: StepRecord) -> None:
        position = f"[{names.index(name) + 1}/{len(names)}] {name}"
        if record.status.value == "running":
            typer.echo(f"{position} ...")
            return
        typer.echo(
            f"{position}: {record.status.value}" + (f": {record.detail}" if record.detail else "")
        )
        for warning in record.warnings:
            typer.echo(f"  warning: {warning}")

    try:
        result = _run(lambda: evacuation.run(request, restart=restart, on_step=show))
    except KeyboardInterrupt:
        typer.echo(
            f"holdfast: interrupted; `holdfast evacuate --to {request.target}` resumes at the "
            "step that was running",
            err=True,
        )
        raise typer.Exit(130) from None
    except RunbookError as exc:
        typer.echo(f"holdfast: {exc}", err=True)
        raise typer.Exit(2) from None
    except Stopped as exc:
        typer.echo(
            f"holdfast: the evacuation from {request.source} to {request.target} stopped at "
            f"step {names.index(exc.step) + 1} of {len(names)} ({exc.step}): {exc.message}. "
            f"Steps before it are done and recorded in {request.state_path}; `holdfast "
            f"evacuate --to {request.target}` resumes at {exc.step}.",
            err=True,
        )
        raise typer.Exit(1) from None
    if result.already_finished:
        typer.echo(
            f"the evacuation from {request.source} to {request.target} (run "
            f"{result.state.run_id}) finished at {result.state.finished_at}: nothing to do "
            "(--restart begins a new one)"
        )
    else:
        typer.echo(f"evacuated from {request.source} to {request.target}")
    typer.echo("now set, wherever the service's settings live:")
    for line in evacuation.next_steps(request):
        typer.echo(f"  {line}")
