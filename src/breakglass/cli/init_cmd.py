"""`breakglass init`: write a commented starter config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from breakglass.errors import UserInputError

STARTER = """\
# breakglass platform config. `breakglass config schema` prints every field;
# `breakglass config validate` checks this file.

# Where runs, the journal and the audit log are kept. Default: an SQLite file in
# $XDG_STATE_HOME/breakglass. A team shares one PostgreSQL database instead:
# state_url: postgresql+psycopg://breakglass@db.internal/breakglass

# Directories searched for your own runbooks, after the built-in catalog.
# A runbook here overrides a built-in runbook of the same name.
runbook_dirs:
  - runbooks

# How long a run awaiting approval keeps its locks.
approval_timeout: 1h

# The audit log is an HMAC chain. Keep the key outside the state store, for example:
# audit:
#   key: env:BREAKGLASS_AUDIT_KEY
# Without a key, one is created in the state directory on first use.

# Values runbooks read as {{ config.vars.NAME }}.
vars:
  environment: production

# Checks run by `breakglass health` and by the health.run step.
health:
  checks: []
  # - name: frontend
  #   url: https://www.example.com/healthz
  #   expect_status: [200]
  #   max_latency: 2s
  #   timeout: 5s
  #   json:
  #     - path: status
  #       equals: ok

# PostgreSQL databases the pg.* actions and db-* runbooks name. The password is a
# reference, resolved only when used.
# databases:
#   app:
#     host: db.internal
#     port: 5432
#     dbname: app
#     user: breakglass
#     password: env:APP_DB_PASSWORD
#     os_user: postgres
#     data_directory: /var/lib/postgresql/15/main
#     server_control: {kind: pg_ctl}
#     backup_dir: /var/backups/postgres/base
#     wal_archive_dir: /var/backups/postgres/wal
#     writers: [backend, worker]

# The Kubernetes cluster of the k8s.* actions. A run is rejected when the kubeconfig's
# context points at another API server than `server`.
# kubernetes:
#   context: prod-eu
#   server: https://api.prod-eu.example.com:6443
#   namespace: shop

# AWS resources; credentials come from the usual AWS chain, never this file.
# aws:
#   region: us-east-1
#   distributions: {frontend: E2EXAMPLE123}

# Drills: `breakglass drill list` shows what is due; `drill run` acts on staging only.
# drills:
#   staging_config: staging.yaml
"""


def init(
    path: Annotated[Path, typer.Argument(help="Where to write the config.")] = Path(
        "breakglass.yaml"
    ),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starter breakglass.yaml."""
    if path.exists() and not force:
        raise UserInputError(f"{path} already exists", hint="pass --force to overwrite it")
    path.write_text(STARTER, encoding="utf-8")
    typer.echo(f"wrote {path}; check it with `breakglass --config {path} config validate`")
