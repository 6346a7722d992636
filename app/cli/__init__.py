"""The `holdfast` command: serve, worker, migrate, users create-admin, seed, timelines
rebuild/trim, jobs status/retry-dead (service.py); storage migrate/verify/orphans/status
(storage.py); payments sync/reconcile/migrate/report (payments.py); fleet
plan/apply/destroy/status and dns export (fleet.py); backup create/list/restore/prune and
scheduler (backup.py); evacuate (evacuate.py); operations register/list/remove
(operations.py). Each module registers its commands on `cli`
(common.py) when imported, in this order, which is the order `holdfast --help` lists them."""

from __future__ import annotations

from importlib import import_module

from app.cli.common import cli

for _module in ("service", "storage", "payments", "fleet", "backup", "evacuate", "operations"):
    import_module(f"app.cli.{_module}")

__all__ = ["cli", "main"]


def main() -> None:
    cli()
