#!/usr/bin/env python3
"""DuckDB side of the trace benchmark (crates/holdfast-trace/benches/trace.rs runs it).

usage: bench-trace-duckdb.py DIR HOPS SERVICES
Reads DIR/transfers.csv (id,blk,src,dst,amount) and DIR/seeds.csv (addr,from_block), runs the
poison reach as a recursive CTE three times, prints "median SECONDS", then "addr,amount" rows.
DuckDB's temporary files stay under DIR.
"""
import statistics
import sys
import time

import duckdb

d, hops, services = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
con = duckdb.connect()
con.execute(f"SET temp_directory = '{d}/duckdb-tmp'")
t0 = time.time()
con.execute(f"""CREATE TABLE transfers AS SELECT * FROM read_csv('{d}/transfers.csv', header=false,
    columns={{'id': 'BIGINT', 'blk': 'BIGINT', 'src': 'BIGINT', 'dst': 'BIGINT', 'amount': 'HUGEINT'}})""")
con.execute(f"""CREATE TABLE seeds AS SELECT s.addr, (SELECT MIN(id) - 1 FROM transfers WHERE blk >= s.from_block) AS first_id
    FROM read_csv('{d}/seeds.csv', header=false, columns={{'addr': 'BIGINT', 'from_block': 'BIGINT'}}) s""")
print(f"load {time.time() - t0:.1f} s")
sql = f"""
WITH RECURSIVE reach(addr, arrival, hop) AS (
  SELECT addr, first_id, 0 FROM seeds
  UNION
  SELECT t.dst, t.id, r.hop + 1
  FROM reach r JOIN transfers t ON t.src = r.addr AND t.id > r.arrival
  WHERE r.hop < {hops} AND r.addr >= {services}
),
tainted AS (SELECT DISTINCT arrival FROM reach WHERE hop > 0)
SELECT a.addr, COALESCE(x.amount, 0) FROM (SELECT DISTINCT addr FROM reach) a
LEFT JOIN (SELECT t.dst AS addr, SUM(t.amount) AS amount FROM tainted k JOIN transfers t ON t.id = k.arrival GROUP BY t.dst) x
  ON x.addr = a.addr
ORDER BY a.addr
"""
times, rows = [], []
for _ in range(3):
    t0 = time.time()
    rows = con.execute(sql).fetchall()
    times.append(time.time() - t0)
print(f"runs {' '.join(f'{t:.3f}' for t in times)}")
# VmHWM, not ru_maxrss: the latter keeps the parent's peak across fork + exec.
hwm = next((l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")), "nan")
print(f"peak RSS {float(hwm) / 1024:.0f} MB")
print(f"median {statistics.median(times):.3f}")
for a, v in rows:
    print(f"{a},{v}")
