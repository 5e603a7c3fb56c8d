"""A throwaway PostgreSQL server for tests and benchmarks: initdb into a temporary directory, listen
on a Unix socket there only (no TCP port to collide on), stop and delete at the end.

Debian's `postgresql` package provides the binaries (scripts/test.sh installs it when missing).
PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` system user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType


def find_bindir() -> Path | None:
    for cand in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(cand) / "initdb").exists() and (Path(cand) / "pg_ctl").exists():
            return Path(cand)
    which = shutil.which("initdb")
    return Path(which).resolve().parent if which else None


def unavailable_reason() -> str | None:
    """Why no PostgreSQL server can be started here, or None when one can."""
    if find_bindir() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install -y postgresql"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run the server as"
    try:
        import psycopg  # noqa: F401
        import sqlalchemy  # noqa: F401
    except ImportError:
        return "the records extra is not installed (pip install '.[records]')"
    return None


@dataclass
class PostgresServer:
    root: Path
    bindir: Path
    user: str | None  # run the server binaries as this user (None: the current one)
    database: str = "align_records"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql://align@/{self.database}?host={self.root}"

    def _run(self, *args: str) -> None:
        kw: dict[str, object] = {"user": self.user} if self.user else {}
        r = subprocess.run(list(args), capture_output=True, text=True, timeout=60, **kw)  # type: ignore[call-overload]
        if r.returncode != 0:
            log = (self.root / "log").read_text() if (self.root / "log").exists() else ""
            raise RuntimeError(f"{args[0]} failed ({r.returncode}): {r.stderr.strip()} {log[-500:]}")

    @classmethod
    def start(cls) -> PostgresServer:
        reason = unavailable_reason()
        if reason is not None:
            raise RuntimeError(reason)
        bindir = find_bindir()
        assert bindir is not None
        # Short path: a Unix socket path must stay under ~107 bytes.
        root = Path(tempfile.mkdtemp(prefix="pg-", dir="/tmp"))
        user = None
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(root, pw.pw_uid, pw.pw_gid)
            user = "postgres"
        srv = cls(root, bindir, user)
        try:
            # --no-sync only skips initdb's own flush of the new cluster; the server keeps fsync on.
            srv._run(str(bindir / "initdb"), "-D", str(srv.data), "-U", "align", "--auth=trust", "-E", "UTF8", "--no-sync")
            opts = f"-c listen_addresses='' -c unix_socket_directories={root} -c max_connections=200"
            srv._run(str(bindir / "pg_ctl"), "-D", str(srv.data), "-l", str(root / "log"), "-w", "-t", "30", "-o", opts, "start")
            import sqlalchemy as sa

            admin = sa.create_engine(f"postgresql+psycopg://align@/postgres?host={root}", isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f"CREATE DATABASE {srv.database}"))
            admin.dispose()
        except BaseException:
            srv.stop()
            raise
        return srv

    def reset(self) -> None:
        """Empty the database (drop every table, Alembic's version table too)."""
        import sqlalchemy as sa

        engine = sa.create_engine(self.url.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
        engine.dispose()

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")
            except RuntimeError:
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
