"""The results store: one SQLite database per output folder, shared by every bench process writing there.

``<output>/results.sqlite`` (WAL mode, so readers never block the writer) holds
one row per run, keyed by config hash: name, run folder, resolved config,
status (``claimed`` / ``complete`` / ``failed``), owner (host, pid), claim and
heartbeat times, the one-line error of a failure, the record and its seconds,
and counters (claims, trainings). A table of events keeps the claim history.
Every write is one transaction; a claim is ``BEGIN IMMEDIATE`` (one writer at a
time), so of several processes asking for the same run exactly one gets it.

The record files stay the source of truth: the runner writes ``record.json``
and the store mirrors it; a lost or deleted store is rebuilt from the record
files as a bench meets them (:meth:`ResultsStore.mirror`).

Claims. :meth:`ResultsStore.claim` succeeds when the run has no row, when it
failed before this bench started (a rerun retries failures; a failure of a
sibling process during this bench is not retried by it), when it completed
before this bench started and ``rerun`` is asked for, when the claim is this
process's own, or when the claim is stale. A claim is stale when its owner is a
process on this host that no longer exists, or when its heartbeat is older than
``stale_after`` seconds (default 300; a live owner beats every 30 s), which also
covers owners on other hosts and a pid reused since. SQLite locks do not work
across the hosts of a network filesystem: one host writes an output folder's
store (several local processes, or one Ray driver for a cluster).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsolbench.errors import DataError, OutputError

SCHEMA_VERSION = 1
STORE_FILE = "results.sqlite"
HEARTBEAT_S = 30.0
STALE_AFTER_S = 300.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    hash TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    run_dir TEXT NOT NULL,
    config TEXT,
    status TEXT NOT NULL CHECK (status IN ('claimed', 'complete', 'failed')),
    host TEXT, pid INTEGER,
    claimed_at REAL, heartbeat REAL, updated_at REAL NOT NULL,
    error TEXT, record TEXT, seconds REAL,
    claims INTEGER NOT NULL DEFAULT 0,
    trainings INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hash TEXT NOT NULL, event TEXT NOT NULL, host TEXT, pid INTEGER, at REAL NOT NULL, detail TEXT
);
CREATE INDEX IF NOT EXISTS events_hash ON events (hash);
"""


@dataclass(frozen=True)
class Owner:
    """A bench process: its host name and pid."""

    host: str
    pid: int

    @classmethod
    def current(cls) -> Owner:
        return cls(socket.gethostname(), os.getpid())

    def alive(self) -> bool | None:
        """Whether the process exists: True / False on this host, None (unknown) on another."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, another user's
            return True
        return True

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}"


@dataclass(frozen=True)
class RunRow:
    """One run's row (the record itself is read with :meth:`ResultsStore.record`)."""

    hash: str
    name: str
    run_dir: str
    status: str
    owner: Owner | None
    claimed_at: float | None
    heartbeat: float | None
    updated_at: float
    error: str | None
    seconds: float | None
    claims: int
    trainings: int


@dataclass(frozen=True)
class Claim:
    """The answer to :meth:`ResultsStore.claim`: ``ok``, and why (``new``, ``own``, ``retry``, ``rerun``, ``stale``
    when granted; ``held``, ``complete``, ``failed`` when not), with the row as it was before."""

    ok: bool
    reason: str
    before: RunRow | None


_COLUMNS = ("hash, name, run_dir, status, host, pid, claimed_at, heartbeat, updated_at, error, seconds, claims, "
            "trainings")


def _row(values: tuple[Any, ...]) -> RunRow:
    (digest, name, run_dir, status, host, pid, claimed_at, heartbeat, updated_at, error, seconds, claims,
     trainings) = values
    owner = Owner(host, int(pid)) if host is not None and pid is not None else None
    return RunRow(digest, name, run_dir, status, owner, claimed_at, heartbeat, updated_at, error, seconds, claims,
                  trainings)


def one_line(message: object) -> str:
    """The first non-empty line of ``message`` (errors in the store are one line)."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    return lines[0] if lines else type(message).__name__


class ResultsStore:
    """The store of ``output_dir`` (created on first use); one connection, for the thread that opened it.

    ``owner``: whose claims this store makes (default: this process). ``stale_after``: seconds without a
    heartbeat after which any claim is stale. ``create=False`` opens an existing store only (OutputError if
    there is none), e.g. for a dry run that must not write.
    """

    def __init__(self, output_dir: Path, *, owner: Owner | None = None, stale_after: float = STALE_AFTER_S,
                 timeout: float = 60.0, create: bool = True) -> None:
        self.path = Path(output_dir) / STORE_FILE
        self.owner = owner or Owner.current()
        self.stale_after = stale_after
        self.timeout = timeout
        if not create and not self.path.exists():
            raise OutputError(f"no results store {self.path}")
        try:
            self._db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
            self._db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            if create:
                self._db.execute("PRAGMA journal_mode = WAL")
                self._db.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.OperationalError as exc:
            raise OutputError(f"results store {self.path} cannot be opened: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise DataError(f"results store {self.path} cannot be read: {exc}") from None
        self._prepare(create)

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken before reading (``BEGIN IMMEDIATE``): read-check-write is atomic."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise OutputError(f"results store {self.path} cannot be written: {exc}") from None
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")

    def _prepare(self, create: bool) -> None:
        try:
            if create:
                with self._write() as db:
                    for statement in filter(str.strip, _SCHEMA.split(";")):
                        db.execute(statement)
                    db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            found = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise DataError(f"results store {self.path} cannot be read: {exc}") from None
        version = int(found[0]) if found else None
        if version is None or version > SCHEMA_VERSION:
            raise DataError(f"results store {self.path} has schema version {version}, this wsolbench reads "
                            f"{SCHEMA_VERSION} or older (upgrade wsolbench, or use another --output-dir)")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _event(self, db: sqlite3.Connection, digest: str, event: str, detail: str | None = None,
               now: float | None = None) -> None:
        db.execute("INSERT INTO events (hash, event, host, pid, at, detail) VALUES (?, ?, ?, ?, ?, ?)",
                   (digest, event, self.owner.host, self.owner.pid, now or time.time(), detail))

    def _get(self, db: sqlite3.Connection, digest: str) -> RunRow | None:
        found = db.execute(f"SELECT {_COLUMNS} FROM runs WHERE hash = ?", (digest,)).fetchone()
        return _row(found) if found else None

    # ------------------------------------------------------------------ reading

    def row(self, digest: str) -> RunRow | None:
        return self._get(self._db, digest)

    def rows(self, digests: Iterable[str] | None = None) -> dict[str, RunRow]:
        """Rows by hash (all of them, or those of ``digests`` that exist)."""
        found = [_row(r) for r in self._db.execute(f"SELECT {_COLUMNS} FROM runs")]
        wanted = None if digests is None else set(digests)
        return {r.hash: r for r in found if wanted is None or r.hash in wanted}

    def record(self, digest: str) -> dict[str, Any] | None:
        found = self._db.execute("SELECT record FROM runs WHERE hash = ?", (digest,)).fetchone()
        return json.loads(found[0]) if found and found[0] else None

    def events(self, digest: str | None = None) -> list[dict[str, Any]]:
        """The claim history, oldest first: ``{hash, event, owner, at, detail}``."""
        query = "SELECT hash, event, host, pid, at, detail FROM events"
        args: tuple[Any, ...] = ()
        if digest is not None:
            query, args = query + " WHERE hash = ?", (digest,)
        return [{"hash": h, "event": e, "owner": Owner(host, pid), "at": at, "detail": d}
                for h, e, host, pid, at, d in self._db.execute(query + " ORDER BY id", args)]

    def is_stale(self, row: RunRow, now: float | None = None) -> bool:
        """A claim whose owner process is gone (this host) or whose heartbeat is older than ``stale_after``."""
        if row.status != "claimed":
            return False
        if row.owner is not None and row.owner.alive() is False:
            return True
        beat = row.heartbeat or row.claimed_at or row.updated_at
        return (now or time.time()) - beat > self.stale_after

    def held_by_other(self, row: RunRow | None) -> bool:
        """Whether another live process holds ``row``'s claim."""
        return row is not None and row.status == "claimed" and row.owner != self.owner and not self.is_stale(row)

    # ------------------------------------------------------------------ writing

    def claim(self, digest: str, *, name: str, run_dir: str, config: dict[str, Any] | None = None,
              since: float | None = None, rerun: bool = False) -> Claim:
        """Claim the run ``digest`` for this store's owner, atomically (see the module docstring for the rule).

        ``since``: when this bench started (failures and, with ``rerun``, completions before it are retried;
        None: any failure is retried).
        """
        now = time.time()
        with self._write() as db:
            before = self._get(db, digest)
            reason = self._grant(before, since, rerun, now)
            if reason in ("held", "complete", "failed"):
                return Claim(False, reason, before)
            values = (name, run_dir, json.dumps(config) if config is not None else None, self.owner.host,
                      self.owner.pid, now, now, now)
            if before is None:
                db.execute("INSERT INTO runs (name, run_dir, config, status, host, pid, claimed_at, heartbeat, "
                           "updated_at, claims, hash) VALUES (?, ?, ?, 'claimed', ?, ?, ?, ?, ?, 1, ?)",
                           (*values, digest))
            else:
                db.execute("UPDATE runs SET name = ?, run_dir = ?, config = coalesce(?, config), status = 'claimed', "
                           "host = ?, pid = ?, claimed_at = ?, heartbeat = ?, updated_at = ?, error = NULL, "
                           "claims = claims + 1 WHERE hash = ?", (*values, digest))
            detail = reason if before is None or before.owner is None else f"{reason} (was {before.owner})"
            self._event(db, digest, "claim", detail, now)
        return Claim(True, reason, before)

    def _grant(self, before: RunRow | None, since: float | None, rerun: bool, now: float) -> str:
        if before is None:
            return "new"
        earlier = since is None or before.updated_at < since
        if before.status == "claimed":
            if before.owner == self.owner:
                return "own"
            return "stale" if self.is_stale(before, now) else "held"
        if before.status == "failed":
            return "retry" if earlier else "failed"
        return "rerun" if rerun and earlier else "complete"

    def heartbeat(self, digests: Iterable[str]) -> None:
        """Refresh this owner's claims on ``digests`` (a claim another process took over is left alone)."""
        digests = list(digests)
        if not digests:
            return
        now = time.time()
        with self._write() as db:
            db.executemany("UPDATE runs SET heartbeat = ? WHERE hash = ? AND status = 'claimed' AND host = ? "
                           "AND pid = ?", [(now, d, self.owner.host, self.owner.pid) for d in digests])

    def complete(self, digest: str, record: dict[str, Any], *, run_dir: str, trained: bool) -> None:
        """The run is complete with ``record`` (``trained``: this owner trained it, rather than reusing a record)."""
        now = time.time()
        seconds = (record.get("timings") or {}).get("total")
        with self._write() as db:
            before = self._get(db, digest)
            if before is None:
                self._insert_complete(db, digest, record, run_dir, now)
            db.execute("UPDATE runs SET status = 'complete', host = ?, pid = ?, updated_at = ?, error = NULL, "
                       "record = ?, seconds = ?, run_dir = ?, trainings = trainings + ? WHERE hash = ?",
                       (self.owner.host, self.owner.pid, now, json.dumps(record), seconds, run_dir, int(trained),
                        digest))
            late = before is not None and before.status == "claimed" and before.owner != self.owner
            self._event(db, digest, "complete", ("trained" if trained else "reused") + (" (late)" if late else ""), now)

    @staticmethod
    def _insert_complete(db: sqlite3.Connection, digest: str, record: dict[str, Any], run_dir: str, now: float) -> None:
        """A complete row for a run the store has no row of yet (its outcome columns set by the caller)."""
        db.execute("INSERT INTO runs (hash, name, run_dir, config, status, updated_at) VALUES (?, ?, ?, ?, 'complete', ?)",
                   (digest, record.get("name", ""), run_dir, json.dumps(record.get("config")), now))

    def fail(self, digest: str, error: str, *, name: str = "", run_dir: str = "") -> None:
        """The run failed with ``error`` (kept as one line)."""
        now = time.time()
        with self._write() as db:
            if self._get(db, digest) is None:
                db.execute("INSERT INTO runs (hash, name, run_dir, status, updated_at) VALUES (?, ?, ?, 'failed', ?)",
                           (digest, name, run_dir, now))
            db.execute("UPDATE runs SET status = 'failed', host = ?, pid = ?, updated_at = ?, error = ? WHERE hash = ?",
                       (self.owner.host, self.owner.pid, now, one_line(error), digest))
            self._event(db, digest, "fail", one_line(error), now)

    def release(self, digest: str, why: str = "released") -> None:
        """Give up this owner's claim (interrupted before an outcome): the run is unclaimed again."""
        with self._write() as db:
            db.execute("DELETE FROM runs WHERE hash = ? AND status = 'claimed' AND host = ? AND pid = ?",
                       (digest, self.owner.host, self.owner.pid))
            self._event(db, digest, "release", why)

    def mirror(self, digest: str, record: dict[str, Any], *, run_dir: str) -> bool:
        """Store a record found on disk when the store lacks it (a lost store rebuilt, or an owner that died between
        writing the record and the store); a live claim is left to its owner. True when written."""
        now = time.time()
        with self._write() as db:
            before = self._get(db, digest)
            if before is not None and (before.status == "complete" or self.held_by_other(before)):
                return False
            if before is None:
                self._insert_complete(db, digest, record, run_dir, now)
            db.execute("UPDATE runs SET status = 'complete', updated_at = ?, error = NULL, record = ?, seconds = ?, "
                       "run_dir = ? WHERE hash = ?",
                       (now, json.dumps(record), (record.get("timings") or {}).get("total"), run_dir, digest))
            self._event(db, digest, "mirror", None, now)
        return True


class Heartbeat:
    """A daemon thread beating this owner's claims on a changing set of runs every ``interval`` seconds, on its own
    connection (``with Heartbeat(store) as beat: beat.add(h) ...``)."""

    def __init__(self, store: ResultsStore, interval: float = HEARTBEAT_S) -> None:
        self._args = (store.path.parent, store.owner, store.stale_after, store.timeout)
        self.interval = interval
        self._digests: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="wsolbench-heartbeat", daemon=True)

    def add(self, digest: str) -> None:
        with self._lock:
            self._digests.add(digest)

    def discard(self, digest: str) -> None:
        with self._lock:
            self._digests.discard(digest)

    def _loop(self) -> None:
        output_dir, owner, stale_after, timeout = self._args
        store = ResultsStore(output_dir, owner=owner, stale_after=stale_after, timeout=timeout)
        try:
            while not self._stop.wait(self.interval):
                with self._lock:
                    digests = list(self._digests)
                try:
                    store.heartbeat(digests)
                except OutputError:  # a busy database: the next beat tries again
                    pass
        finally:
            store.close()

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)
