"""The guard that keeps drills off the live platform.

A drill runs against a staging config. That config must not share the live config's state
store, a PostgreSQL cluster (a restore rolls back every database on it, so the database
name does not matter) or the Kubernetes API server. Host names are resolved to addresses
and SQLite paths through symlinks before comparing, so `localhost` and `127.0.0.1` are
the same target.
"""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

from breakglass.config.databases import DatabaseConfig
from breakglass.engine.workspace import Workspace

_DEFAULT_PORTS = {"https": 443, "http": 80}


def _addresses(host: str) -> set[str]:
    """Return the addresses a host name resolves to, or the name itself if it does not."""
    if host.startswith("/"):
        return {str(Path(host).resolve())}
    try:
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return {host.lower()}
    return {str(info[4][0]) for info in found} | {host.lower()}


def _same_cluster(first: DatabaseConfig, second: DatabaseConfig) -> bool:
    return first.port == second.port and bool(_addresses(first.host) & _addresses(second.host))


def _server_key(url: str) -> tuple[set[str], int | None]:
    parts = urlsplit(url if "://" in url else f"https://{url}")
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    return _addresses(parts.hostname or ""), port


def _same_store(first_url: str, second_url: str) -> bool:
    """Compare two state store URLs: SQLite files by resolved path, servers by address."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        first, second = make_url(first_url), make_url(second_url)
    except ArgumentError:
        return first_url == second_url
    if first.get_backend_name() != second.get_backend_name():
        return False
    if first.get_backend_name() == "sqlite":
        # resolve() follows symlinks and `..`, so two spellings of one file compare equal.
        return Path(first.database or "").resolve() == Path(second.database or "").resolve()
    return (
        first.database == second.database
        and (first.port or 5432) == (second.port or 5432)
        and bool(_addresses(first.host or "localhost") & _addresses(second.host or "localhost"))
    )


def _api_server(workspace: Workspace) -> str | None:
    cluster = workspace.config.model.kubernetes
    if cluster is None:
        return None
    if cluster.in_cluster:
        return "in-cluster"
    # Imported here: the Kubernetes client is slow to import and only this check needs it.
    from breakglass.actions.kubernetes.client import api_server

    return api_server(cluster, workspace.config.base_dir)


def staging_config(workspace: Workspace) -> tuple[Path | None, str | None]:
    """Return `drills.staging_config` as an absolute path, and what is wrong with it, if anything."""
    configured = workspace.config.model.drills.staging_config
    if configured is None:
        return None, None
    path = configured.expanduser()
    if not path.is_absolute():
        path = workspace.config.base_dir / path
    if path.is_dir():
        return path, f"{path} is a directory, not a config file"
    if not path.is_file():
        return path, f"{path} does not exist"
    live = workspace.config.path
    if live is not None and path.resolve() == live.resolve():
        return path, f"{path} is the live config"
    return path, None


def shared_targets(live: Workspace, staging: Workspace) -> list[str]:
    """Return each target the staging config shares with the live one; empty if none."""
    shared: list[str] = []
    if _same_store(staging.state_url, live.state_url):
        shared.append(f"state store {staging.state_url}")
    live_server, staging_server = _api_server(live), _api_server(staging)
    if live_server and staging_server:
        if live_server == staging_server == "in-cluster":
            shared.append("the in-cluster Kubernetes API server")
        elif "in-cluster" not in (live_server, staging_server):
            live_hosts, live_port = _server_key(live_server)
            staging_hosts, staging_port = _server_key(staging_server)
            if live_port == staging_port and live_hosts & staging_hosts:
                shared.append(f"Kubernetes API server {staging_server} (live: {live_server})")
    for name, database in staging.config.model.databases.items():
        for live_name, live_database in live.config.model.databases.items():
            if _same_cluster(database, live_database):
                shared.append(
                    f"PostgreSQL cluster {database.host}:{database.port} "
                    f"({name}; live: {live_name} at {live_database.host}:{live_database.port})"
                )
    return shared
