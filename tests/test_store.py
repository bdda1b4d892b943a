"""The results store: atomic claims, the stale-claim rule, retries, mirroring records, the schema version."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from wsolbench.bench.store import STORE_FILE, Heartbeat, Owner, ResultsStore
from wsolbench.errors import DataError


def _dead_pid() -> int:
    """The pid of a process of this host that has exited (and been reaped)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(proc.stdout)


def _claim(store: ResultsStore, digest: str, **kw):
    return store.claim(digest, name=f"run-{digest}", run_dir=f"run-{digest}", **kw)


def test_wal_mode_and_schema_version(tmp_path):
    with ResultsStore(tmp_path) as store:
        assert store.path == tmp_path / STORE_FILE
    db = sqlite3.connect(tmp_path / STORE_FILE)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "1"
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(DataError, match=r"schema version 99, this wsolbench reads 1 or older") as info:
        ResultsStore(tmp_path)
    assert str(tmp_path / STORE_FILE) in str(info.value) and "\n" not in str(info.value)


def test_a_file_that_is_no_database_is_refused(tmp_path):
    (tmp_path / STORE_FILE).write_text("not sqlite at all, " * 100)
    with pytest.raises(DataError, match="cannot be read"):
        ResultsStore(tmp_path)


def test_racing_claims_grant_each_run_to_exactly_one_connection(tmp_path):
    """Eight connections (as eight bench processes would hold) claim the same 40 runs at once."""
    ResultsStore(tmp_path).close()
    digests = [f"{i:012x}" for i in range(40)]
    won: dict[int, list[str]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def worker(k: int) -> None:
        try:
            with ResultsStore(tmp_path, owner=Owner(f"host{k}", 1000 + k)) as store:
                start.wait()
                won[k] = [d for d in (digests if k % 2 else digests[::-1]) if _claim(store, d).ok]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    granted = sorted(d for ds in won.values() for d in ds)
    assert granted == digests  # every run exactly once
    with ResultsStore(tmp_path) as store:
        rows = store.rows()
        assert all(r.status == "claimed" and r.claims == 1 for r in rows.values())
        owners = {r.hash: r.owner for r in rows.values()}
        assert all(owners[d] == Owner(f"host{k}", 1000 + k) for k, ds in won.items() for d in ds)


def test_a_claim_of_a_dead_process_on_this_host_is_stale(tmp_path):
    dead = ResultsStore(tmp_path, owner=Owner(Owner.current().host, _dead_pid()))
    assert _claim(dead, "a").ok
    live = ResultsStore(tmp_path, owner=Owner(Owner.current().host, _parent_pid()))
    assert _claim(live, "b").ok
    me = ResultsStore(tmp_path)
    taken = _claim(me, "a")
    assert taken.ok and taken.reason == "stale" and taken.before.owner == dead.owner
    held = _claim(me, "b")  # its owner (this test's parent process) is alive and beat just now
    assert not held.ok and held.reason == "held"
    events = [(e["event"], e["detail"]) for e in me.events("a")]
    assert events == [("claim", "new"), ("claim", f"stale (was {dead.owner})")]
    assert me.row("a").claims == 2


def _parent_pid() -> int:
    import os

    return os.getppid()


def test_a_claim_without_heartbeat_for_stale_after_seconds_is_stale(tmp_path):
    far = ResultsStore(tmp_path, owner=Owner("another-host", 7))  # no pid check on another host
    assert _claim(far, "a").ok
    me = ResultsStore(tmp_path, stale_after=1.0)
    assert _claim(me, "a").reason == "held"
    time.sleep(0.6)
    far.heartbeat(["a"])  # a beat keeps it alive
    time.sleep(0.6)
    assert _claim(me, "a").reason == "held"
    time.sleep(1.1)
    assert _claim(me, "a").reason == "stale"
    far.heartbeat(["a"])  # the old owner's beat no longer touches a claim taken over
    assert me.row("a").owner == me.owner


def test_the_heartbeat_thread_keeps_a_long_run_claimed(tmp_path):
    owner = ResultsStore(tmp_path, owner=Owner("another-host", 8))
    assert _claim(owner, "a").ok
    other = ResultsStore(tmp_path, stale_after=1.0)
    with Heartbeat(owner, interval=0.05) as beat:
        beat.add("a")
        time.sleep(2.0)  # twice stale_after: alive only thanks to the beats
        assert _claim(other, "a").reason == "held"
    time.sleep(1.2)
    assert _claim(other, "a").reason == "stale"


def test_failed_runs_are_retried_only_when_they_failed_before_this_bench(tmp_path):
    sibling = ResultsStore(tmp_path, owner=Owner("another-host", 9))
    me = ResultsStore(tmp_path)
    assert _claim(sibling, "old").ok
    sibling.fail("old", "boom\nwith a traceback below")
    since = time.time()
    assert _claim(sibling, "new").ok
    sibling.fail("new", "bang")
    assert sibling.row("old").error == "boom"  # one line
    retry = _claim(me, "old", since=since)
    assert retry.ok and retry.reason == "retry" and retry.before.error == "boom"
    assert me.row("old").error is None
    assert _claim(me, "new", since=since).reason == "failed"  # failed during this bench: not retried by it
    assert _claim(me, "new").reason == "retry"  # a later bench retries it


def test_complete_runs_are_claimed_again_only_on_rerun(tmp_path):
    me = ResultsStore(tmp_path)
    assert _claim(me, "a").ok
    me.complete("a", {"name": "run-a", "config": {}, "timings": {"total": 4.5}}, run_dir="run-a", trained=True)
    row = me.row("a")
    assert (row.status, row.seconds, row.trainings) == ("complete", 4.5, 1)
    assert me.record("a")["timings"]["total"] == 4.5
    other = ResultsStore(tmp_path, owner=Owner("another-host", 2))
    assert _claim(other, "a").reason == "complete"
    assert _claim(other, "a", rerun=True, since=time.time() - 3600).reason == "complete"  # done during the bench
    assert _claim(other, "a", rerun=True, since=time.time() + 1).reason == "rerun"


def test_mirror_rebuilds_a_lost_store_but_leaves_a_live_claim_alone(tmp_path):
    record = {"name": "run-a", "config": {"seed": 0}, "timings": {"total": 2.0}}
    with ResultsStore(tmp_path) as me:
        assert me.mirror("a", record, run_dir="run-a-12345678")
        assert not me.mirror("a", record, run_dir="run-a-12345678")  # already complete
        row = me.row("a")
        assert (row.status, row.seconds, row.trainings, row.run_dir) == ("complete", 2.0, 0, "run-a-12345678")
        holder = ResultsStore(tmp_path, owner=Owner("another-host", 3))
        assert _claim(holder, "b").ok
        assert not me.mirror("b", record, run_dir="run-b")
        assert me.row("b").status == "claimed"


def test_release_frees_a_claim(tmp_path):
    me = ResultsStore(tmp_path)
    assert _claim(me, "a").ok
    me.release("a", "interrupted")
    assert me.row("a") is None
    assert _claim(ResultsStore(tmp_path, owner=Owner("another-host", 4)), "a").reason == "new"
    assert [e["event"] for e in me.events("a")] == ["claim", "release", "claim"]
