#!/usr/bin/env python3
"""strata against the physical floor, side by side in one run (issue 8).

Each scenario runs strata and its floor on fresh databases REPEAT times and reports
the medians, their ratio, and strata's peak RSS (from /usr/bin/time):

  S1  up of N migrations on an empty PostgreSQL database
      floor: one psql session running, per migration,
             BEGIN; <up>; INSERT INTO history ...; COMMIT;
  S2  up and status with all N applied          floor: psql -c 'SELECT ... FROM history'
  S3  rollback --to base of all N               floor: psql, per migration,
                                                        BEGIN; <down>; DELETE ...; COMMIT;
  S4  status and validate with 10,000 migrations on disk (goal: < 150 ms, linear)
  S5  a fleet of 100 databases x 50 migrations at concurrency 1, 4 and 8
                                                floor: psql running S1's floor script on
                                                every database, at the same concurrency
  S6  S1 on SQLite                              floor: one sqlite3 session
  S7  up of a DDL-heavy tree on MariaDB (N/10 migrations of CREATE TABLE, ALTER
      TABLE ADD COLUMN, CREATE INDEX, INSERT: MySQL commits DDL as it goes, so strata
      tracks each statement)                  floor: one mariadb session running the
                                                same files, a history INSERT after each
  S0  CPU time of `strata --help` and `status` on an empty project (goal: < 10 ms)

Usage: bench/run.py [--n 1000] [--repeat 5] [--quick] [--only S7]
Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust), MariaDB on 127.0.0.1:3306
(root, no password), psql, mariadb, sqlite3 and /usr/bin/time. Writes
bench/results.md (bench/results-S7.md with --only S7).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG = "postgres://postgres@127.0.0.1:5432/{db}"
PSQL = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres"]


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def timed(cmd, env=None, cwd=None):
    """Seconds and peak RSS (MB) of one run."""
    t0 = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, capture_output=True, text=True, env=env, cwd=cwd)
    elapsed = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    rss_kb = int(r.stderr.strip().splitlines()[-1])
    return elapsed, rss_kb / 1024


def cpu_ms(cmd, runs=20):
    """Mean CPU time (user + system) of a command, from the children's rusage."""
    import resource
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(runs):
        subprocess.run(cmd, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return used / runs * 1000


def pg(sql, db="postgres"):
    sh(PSQL + ["-d", db, "-c", sql])


def fresh_pg(name):
    pg(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    pg(f"CREATE DATABASE {name}")
    return name


def up_sql(i):
    rows = ", ".join(f"({k}, 'v{k}')" for k in range(1, 11))
    return (
        f"CREATE TABLE t{i} (id INTEGER PRIMARY KEY, v TEXT);\n"
        f"CREATE INDEX t{i}_v ON t{i} (v);\n"
        f"INSERT INTO t{i} (id, v) VALUES {rows};\n"
    )


def write_migrations(dir_, n, width=4, pad=0):
    """N migrations; `pad` bytes of comment make each script bigger without more work."""
    dir_.mkdir(parents=True, exist_ok=True)
    filler = "".join(f"-- {'x' * 76}\n" for _ in range(pad // 80))
    for i in range(1, n + 1):
        (dir_ / f"{i:0{width}d}_t{i}.sql").write_text(filler + up_sql(i) + f"-- strata:down\nDROP TABLE t{i};\n")


def busy_ticks():
    """CPU ticks (all cores) spent not idle, from /proc/stat."""
    f = open("/proc/stat").readline().split()[1:]
    return sum(int(x) for i, x in enumerate(f) if i not in (3, 4))


def floor_script(n, down=False):
    out = ["CREATE TABLE IF NOT EXISTS floor_history (version TEXT PRIMARY KEY, name TEXT, checksum TEXT, applied_at TIMESTAMPTZ DEFAULT now());"]
    ids = range(n, 0, -1) if down else range(1, n + 1)
    for i in ids:
        if down:
            out.append(f"BEGIN; DROP TABLE t{i}; DELETE FROM floor_history WHERE version = '{i:04d}'; COMMIT;")
        else:
            out.append(f"BEGIN; {up_sql(i)} INSERT INTO floor_history (version, name, checksum) VALUES ('{i:04d}', 't{i}', '{'0' * 64}'); COMMIT;")
    return "\n".join(out) + "\n"


MARIADB = ["mariadb", "-h", "127.0.0.1", "-P", "3306", "-uroot"]


def my(sql):
    sh(MARIADB + ["-e", sql])


def ddl_sql(i):
    return (
        f"CREATE TABLE d{i} (id INT PRIMARY KEY, v VARCHAR(40));\n"
        f"ALTER TABLE d{i} ADD COLUMN w INT NOT NULL DEFAULT 0;\n"
        f"CREATE INDEX d{i}_v ON d{i} (v);\n"
        f"INSERT INTO d{i} (id, v) VALUES (1, 'a'), (2, 'b');\n"
    )


def s7(strata, work, n, repeat, env, table):
    """S7: a DDL-heavy tree on MariaDB, strata against the mariadb client."""
    mig = work / "ddl"
    mig.mkdir()
    floor = ["CREATE TABLE floor_history (version VARCHAR(20) PRIMARY KEY, checksum CHAR(64), applied_at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6));"]
    for i in range(1, n + 1):
        (mig / f"{i:04d}_d{i}.sql").write_text(ddl_sql(i))
        floor.append(ddl_sql(i) + f"INSERT INTO floor_history (version, checksum) VALUES ('{i:04d}', '{'0' * 64}');")
    floor_file = work / "ddl_floor.sql"
    floor_file.write_text("\n".join(floor) + "\n")
    st, ft, rss = [], [], []
    try:
        for _ in range(repeat):
            my("DROP DATABASE IF EXISTS bench_strata; CREATE DATABASE bench_strata; DROP DATABASE IF EXISTS bench_floor; CREATE DATABASE bench_floor")
            t, m = timed([strata, "--database-url", "mysql://root@127.0.0.1:3306/bench_strata", "--dir", str(mig), "up"], env=env)
            st.append(t)
            rss.append(m)
            ft.append(timed(["sh", "-c", f"{' '.join(MARIADB)} bench_floor < {floor_file}"])[0])
    finally:
        my("DROP DATABASE IF EXISTS bench_strata; DROP DATABASE IF EXISTS bench_floor")
    table.add(f"S7 up, {n} DDL migrations (MariaDB)", median(st), median(ft), max(rss))


def median(xs):
    return statistics.median(xs)


class Table:
    def __init__(self):
        self.rows = []

    def add(self, scenario, strata_s, floor_s, rss_mb, note=""):
        ratio = f"{strata_s / floor_s:.2f}x" if floor_s else "-"
        floor_txt = f"{floor_s * 1000:.0f} ms" if floor_s else note
        self.rows.append((scenario, f"{strata_s * 1000:.0f} ms", floor_txt, ratio, f"{rss_mb:.1f} MB"))
        print(f"{scenario:<44} strata {strata_s * 1000:8.0f} ms   floor {floor_txt:>14}   {ratio:>6}   rss {rss_mb:5.1f} MB", flush=True)

    def markdown(self):
        lines = ["| scenario | strata | floor | ratio | peak RSS |", "|---|---|---|---|---|"]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="N=200, 3 repeats, a 20-database fleet")
    ap.add_argument("--only", choices=["S7"], help="run one scenario")
    a = ap.parse_args()
    if a.quick:
        a.n, a.repeat = 200, 3
    load0 = open("/proc/loadavg").read().split()[:3]
    subprocess.run(["cargo", "build", "--release", "--locked", "-p", "strata-migrate-cli"], cwd=ROOT, check=True)
    strata = str(ROOT / "target/release/strata")
    work = Path(tempfile.mkdtemp(prefix="strata-bench-"))
    env = dict(os.environ, NO_COLOR="1")
    table = Table()
    if a.only == "S7":
        s7(strata, work, a.n // 10, a.repeat, env, table)
        shutil.rmtree(work, ignore_errors=True)
        text = f"strata bench S7: median of {a.repeat}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}\n\n" + table.markdown() + "\n"
        (ROOT / "bench/results-S7.md").write_text(text)
        print("\n" + text)
        return
    try:
        empty = work / "empty"
        empty.mkdir()
        for name, cmd in (("--help", [strata, "--help"]), ("status, empty project", [strata, "--database-url", f"sqlite://{work}/s0.db", "--dir", str(empty), "status"])):
            ms = cpu_ms(cmd)
            table.rows.append((f"S0 CPU of {name}", f"{ms:.1f} ms CPU", "goal < 10 ms", "-", "-"))
            print(f"S0 CPU of {name}: {ms:.1f} ms", flush=True)
        mig = work / "migrations"
        write_migrations(mig, a.n)
        floor_up = work / "floor_up.sql"
        floor_up.write_text(floor_script(a.n))
        floor_down = work / "floor_down.sql"
        floor_down.write_text(floor_script(a.n, down=True))
        url = lambda db: PG.format(db=db)
        run = lambda db, *args: [strata, "--database-url", url(db), "--dir", str(mig), *args]

        # S1 / S3 (and S2 between them) on PostgreSQL.
        s1, f1, s3, f3, s2u, s2s, f2 = [], [], [], [], [], [], []
        rss = {"s1": [], "s2u": [], "s2s": [], "s3": []}

        def measure(key, samples, cmd):
            t, m = timed(cmd, env=env)
            samples.append(t)
            rss[key].append(m)

        for _ in range(a.repeat):
            db = fresh_pg("bench_strata")
            measure("s1", s1, run(db, "up"))
            measure("s2u", s2u, run(db, "up"))
            measure("s2s", s2s, run(db, "status"))
            measure("s3", s3, run(db, "rollback", "--to", "base", "--yes"))
            fdb = fresh_pg("bench_floor")
            f1.append(timed(PSQL + ["-d", fdb, "-f", str(floor_up)])[0])
            f2.append(timed(PSQL + ["-d", fdb, "-c", "SELECT version, checksum FROM floor_history ORDER BY version"])[0])
            f3.append(timed(PSQL + ["-d", fdb, "-f", str(floor_down)])[0])
        table.add(f"S1 up, {a.n} migrations (PostgreSQL)", median(s1), median(f1), max(rss["s1"]))
        table.add(f"S2 up, {a.n} applied, nothing pending", median(s2u), median(f2), max(rss["s2u"]))
        table.add(f"S2 status, {a.n} applied", median(s2s), median(f2), max(rss["s2s"]))
        table.add(f"S3 rollback --to base, {a.n}", median(s3), median(f3), max(rss["s3"]))

        # S4: 10,000 files (and 5,000, to see growth; and 10,000 of 4 KB each, to see
        # that the scripts' size does not count), against a SQLite database whose
        # history tables exist and are empty.
        sh([strata, "--database-url", f"sqlite://{work}/s4.db", "--dir", str(empty), "up"], env=env)
        for n4, pad in ((5000, 0), (10000, 0), (10000, 4000)):
            big = work / f"big{n4}_{pad}"
            write_migrations(big, n4, width=5, pad=pad)
            size = next(big.iterdir()).stat().st_size
            label = f"{n4} migrations" + (f" of {size / 1024:.1f} KB" if pad else "")
            for cmd in ("status", "validate"):
                ts, rs = [], []
                for _ in range(a.repeat):
                    t, rss = timed([strata, "--database-url", f"sqlite://{work}/s4.db", "--dir", str(big), cmd], env=env)
                    ts.append(t)
                    rs.append(rss)
                table.add(f"S4 {cmd}, {label} on disk", median(ts), 0, max(rs), note="goal < 150 ms")

        # S5: a fleet, strata's `up --fleet` against psql running the floor script on
        # every database, both at the same concurrency. The CPU column is the share of
        # the machine's cores busy during the run: once it nears 100%, more concurrency
        # cannot help either of them.
        dbs = 20 if a.quick else 100
        fleet_dir = work / "fleet50"
        write_migrations(fleet_dir, 50)
        fleet_file = work / "fleet.txt"
        fleet_file.write_text("\n".join(url(f"bench_fleet_{k}") for k in range(dbs)) + "\n")
        floor50 = work / "floor50.sql"
        floor50.write_text(floor_script(50))
        cores = os.cpu_count() or 1

        def fleet_run(cmd_or_fn):
            for k in range(dbs):
                fresh_pg(f"bench_fleet_{k}")
            (work / "fleet.txt.state.json").unlink(missing_ok=True)
            b0, t0 = busy_ticks(), time.perf_counter()
            rss = cmd_or_fn()
            wall = time.perf_counter() - t0
            busy = (busy_ticks() - b0) / os.sysconf("SC_CLK_TCK")
            return wall, rss, busy / (wall * cores)

        def psql_fleet(c):
            from concurrent.futures import ThreadPoolExecutor
            one = lambda k: sh(PSQL + ["-d", f"bench_fleet_{k}", "-f", str(floor50)])
            with ThreadPoolExecutor(c) as pool:
                list(pool.map(one, range(dbs)))
            return 0

        s5 = []
        for c in (1, 4, 8):
            st, rss, sbusy = fleet_run(lambda: timed([strata, "--dir", str(fleet_dir), "up", "--fleet", str(fleet_file), "--concurrency", str(c)], env=env)[1])
            ft, _, fbusy = fleet_run(lambda: psql_fleet(c))
            s5.append((c, st, ft, sbusy, fbusy))
            table.add(f"S5 fleet {dbs} x 50, concurrency {c}", st, ft, rss)
        for k in range(dbs):
            pg(f"DROP DATABASE IF EXISTS bench_fleet_{k} WITH (FORCE)")
        fleet_lines = [
            f"S5 speed-up over concurrency 1 ({cores} cores; goal at 8: 4x):",
            "",
            "| concurrency | strata | speed-up | CPU busy | psql floor | speed-up | CPU busy |",
            "|---|---|---|---|---|---|---|",
        ]
        for c, st, ft, sb, fb in s5:
            fleet_lines.append(f"| {c} | {st * 1000:.0f} ms | {s5[0][1] / st:.2f}x | {sb:.0%} | {ft * 1000:.0f} ms | {s5[0][2] / ft:.2f}x | {fb:.0%} |")
        print("\n".join(fleet_lines), flush=True)

        # S6: SQLite S1 against the sqlite3 CLI.
        s6, f6, rss6 = [], [], []
        lite_floor = work / "lite_floor.sql"
        lite_floor.write_text(floor_script(a.n).replace("TIMESTAMPTZ DEFAULT now()", "TEXT"))
        for _ in range(a.repeat):
            for f in ("s6.db", "f6.db"):
                (work / f).unlink(missing_ok=True)
            t, rss = timed([strata, "--database-url", f"sqlite://{work}/s6.db", "--dir", str(mig), "up"], env=env)
            s6.append(t)
            rss6.append(rss)
            f6.append(timed(["sh", "-c", f"sqlite3 {work}/f6.db < {lite_floor}"])[0])
        table.add(f"S6 up, {a.n} migrations (SQLite)", median(s6), median(f6), max(rss6))
        s7(strata, work, a.n // 10, a.repeat, env, table)
    finally:
        for db in ("bench_strata", "bench_floor"):
            pg(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        shutil.rmtree(work, ignore_errors=True)

    load = open("/proc/loadavg").read().split()[:3]
    header = f"strata bench: N={a.n}, median of {a.repeat}, {os.cpu_count()} cores, load average {' '.join(load)} at the end (before: {' '.join(load0)}), {time.strftime('%Y-%m-%d %H:%M')}\n\n"
    text = header + table.markdown() + "\n\n" + "\n".join(fleet_lines) + "\n"
    (ROOT / "bench/results.md").write_text(text)
    print("\n" + text)


if __name__ == "__main__":
    main()
