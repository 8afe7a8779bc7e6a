"""A real PostgreSQL server for the tests of workers sharing a storage: a throwaway cluster
in a temporary folder, run as a user that is not root (the server refuses root), listening on
127.0.0.1 on a free port. The ``postgres_url`` fixture (conftest.py) starts one per session."""

import os
import shutil
import socket
import subprocess
import tempfile
from glob import glob
from pathlib import Path


class NoServer(Exception):
    pass


def _postgres_bin() -> Path:
    found = [shutil.which("initdb"), *sorted(glob("/usr/lib/postgresql/*/bin/initdb"))[::-1]]
    for initdb in found:
        if initdb:
            return Path(initdb).resolve().parent
    raise NoServer("no PostgreSQL server binaries (initdb) are installed")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_postgres() -> tuple[str, list[str], str]:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise NoServer("the psycopg driver is not installed") from None
    binaries = _postgres_bin()
    folder = tempfile.mkdtemp(prefix="growml-postgres-")
    as_user: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            raise NoServer("running as root and runuser is missing to start it as nobody")
        shutil.chown(folder, "nobody")
        as_user = ["runuser", "-u", "nobody", "--"]
    data, port = f"{folder}/data", _free_port()
    run = {"capture_output": True, "text": True, "timeout": 120}
    made = subprocess.run(
        [*as_user, binaries / "initdb", "-D", data, "-U", "postgres", "--auth=trust"], **run
    )
    if made.returncode != 0:
        raise NoServer(f"initdb failed: {made.stderr.strip()[-300:]}")
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl = [*as_user, binaries / "pg_ctl", "-D", data, "-l", f"{folder}/log", "-w", "-t", "60"]
    started = subprocess.run([*pg_ctl, "-o", options, "start"], **run)
    if started.returncode != 0:
        raise NoServer(f"pg_ctl start failed: {started.stdout.strip()[-300:]}")
    return f"postgresql://postgres@127.0.0.1:{port}/postgres", pg_ctl, folder
