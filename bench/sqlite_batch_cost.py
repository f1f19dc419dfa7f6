#!/usr/bin/env python3
"""What each statement of the DB writer's SQLite commit costs, for a batch of transfers.

    bench/sqlite_batch_cost.py [--batch 26] [--commits 300] [--users 10000] [--page-size 4096]
                               [--before "DROP INDEX transfers_to"] [--keep DIR]

Builds a database from the app's own migrations (store/migrations/sqlite), with the writer's
scratch tables (store/src/sql/sqlite_writer.sql), the app's settings (WAL,
`synchronous = FULL`, foreign keys on) and USERS funded people. Then it commits COMMITS batches of
BATCH transfers between people picked at random, each with an idempotency key, by running the
statements of store/src/sql/sqlite_batch.sql that a batch of transfers runs, one at a time, and
prints the mean time of each per commit, the COMMIT's, and how many pages (WAL frames) a commit
wrote. `--before` runs SQL on the database first (a schema experiment); `--page-size` makes the
database with another page size. The figures are comparable with each other, not with the app's:
no HTTP, no actors, no sqlx thread, and Python's driver between statements.

Python's `sqlite3` module uses the system's SQLite, which may be older than the one sqlx bundles
(3.46 today: JSON is parsed differently from 3.45 on). To measure with the bundled version, build
it as a shared library and put it first on the library path:

    src=$(ls -d ~/.cargo/registry/src/*/libsqlite3-sys-*/sqlite3 | tail -1)
    gcc -O2 -shared -fPIC -DSQLITE_DEFAULT_FOREIGN_KEYS=1 -DSQLITE_ENABLE_STAT4 \\
        -DSQLITE_THREADSAFE=1 "$src/sqlite3.c" -o /tmp/libsqlite3.so.0 -lpthread -lm
    LD_LIBRARY_PATH=/tmp bench/sqlite_batch_cost.py

(BENCHMARKS.md, "Fourteenth session".)
"""
import argparse
import collections
import glob
import itertools
import json
import os
import random
import sqlite3
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY_TTL_MS = 86_400_000


def statements(kinds):
    """The batch script's statements that a batch of `kinds` runs, as sqlite.rs picks them."""
    script = open(os.path.join(ROOT, "store/src/sql/sqlite_batch.sql")).read()
    picked = []
    for statement in script.split(";\n"):
        lines = statement.splitlines()
        if not any(line.strip() and not line.startswith("--") for line in lines):
            continue
        when = [k.strip() for line in lines if line.startswith("-- when:")
                for k in line[len("-- when:"):].split(",")]
        if not when or any(k in kinds for k in when):
            first = next(line for line in lines if line.strip() and not line.startswith("--"))
            picked.append((first.strip(), statement))
    return picked


def database(path, page_size, users):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(f"PRAGMA page_size = {page_size}")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("PRAGMA temp_store = memory")
    db.execute("PRAGMA cache_size = -65536")  # the writer's 64 MiB (WRITER_CACHE_KIB)
    for migration in sorted(glob.glob(os.path.join(ROOT, "store/migrations/sqlite/*.sql"))):
        db.executescript(open(migration).read())
    now = int(time.time() * 1000)
    ids = []
    db.execute("BEGIN")
    for n in range(users):
        # Time-ordered, as UserId::new makes them (UUIDv7: the millisecond first).
        ids.append(str(uuid.UUID(f"{now:012x}7{random.getrandbits(76):019x}")))
        email = f"person-{n}@example.test"
        db.execute("INSERT INTO users (id, email, name, picture, created_at, email_key, "
                   "signed_in_at) VALUES (?, ?, ?, '', ?, ?, ?)",
                   (ids[-1], email, f"Person {n}", now, email, now))
        db.execute("INSERT INTO ledger_accounts (user_id, currency, balance, last_entry, "
                   "updated_at) VALUES (?, 'INR', 1000000000, 0, ?)", (ids[-1], now))
    db.execute("COMMIT")
    db.executescript(open(os.path.join(ROOT, "store/src/sql/sqlite_writer.sql")).read())
    # The app's checkpoints run on a connection of their own (`Checkpointer` in sqlite.rs), off
    # the writer's commits: none here, so the WAL only grows and its growth is what each
    # commit wrote.
    db.execute("PRAGMA wal_autocheckpoint = 0")
    return db, ids


def batch(ids, size, rng, counter):
    now = int(time.time() * 1000)
    rows = []
    for pos in range(size):
        sender = rng.randrange(len(ids))
        recipient = (sender + rng.randrange(1, len(ids))) % len(ids)
        rows.append({
            "pos": pos, "id": f"trf_{now:012x}{next(counter):020x}", "from": ids[sender],
            "to": ids[recipient], "amount": rng.randrange(1, 100), "currency": "INR",
            "key": str(uuid.uuid4()), "cutoff": now - KEY_TTL_MS, "now": now,
            "to_name": f"Person {recipient}", "to_email": f"person-{recipient}@example.test",
        })
    return json.dumps({"transfers": rows})


def main():
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--batch", type=int, default=26, help="transfers per commit")
    args.add_argument("--commits", type=int, default=300)
    args.add_argument("--users", type=int, default=10_000)
    args.add_argument("--page-size", type=int, default=4096)
    args.add_argument("--before", default="", help="SQL run on the database first")
    args.add_argument("--keep", help="make the database in this directory and keep it")
    opts = args.parse_args()

    directory = opts.keep or tempfile.mkdtemp(prefix="sqlite-batch-cost-")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "batch-cost.db")
    for old in glob.glob(path + "*"):
        os.remove(old)
    db, ids = database(path, opts.page_size, opts.users)
    if opts.before:
        db.executescript(opts.before)
    picked = statements({"transfers", "transfer_keys"})
    rng, counter = random.Random(7), itertools.count()
    spent = collections.Counter()
    frames = 0
    for _ in range(opts.commits):
        rows = batch(ids, opts.batch, rng, counter)
        wal_before = os.path.getsize(path + "-wal")
        db.execute("BEGIN IMMEDIATE")
        for first, statement in picked:
            start = time.perf_counter()
            db.execute(statement, (rows,) if "?1" in statement else ()).fetchall()
            spent[first] += time.perf_counter() - start
        start = time.perf_counter()
        db.execute("COMMIT")
        spent["COMMIT"] += time.perf_counter() - start
        frames += (os.path.getsize(path + "-wal") - wal_before) // (opts.page_size + 24)
    total = sum(spent.values()) / opts.commits
    print(f"SQLite {sqlite3.sqlite_version}, page size {opts.page_size}, {opts.users} people, "
          f"{opts.commits} commits of {opts.batch} transfers")
    print(f"{total * 1e3:7.3f} ms a commit, {total / opts.batch * 1e6:.1f} µs a transfer, "
          f"{frames / opts.commits:.0f} pages written a commit")
    for first, _ in picked + [("COMMIT", None)]:
        share = spent[first] / opts.commits
        print(f"{share * 1e3:7.3f} ms {share / total:6.1%}  {first[:90]}")
    if not opts.keep:
        db.close()
        for old in glob.glob(path + "*"):
            os.remove(old)
        os.rmdir(directory)


if __name__ == "__main__":
    main()
