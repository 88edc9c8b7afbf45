"""TPC-DS for PostgreSQL from DuckDB's tpcds extension: data as CSV, a PostgreSQL schema and the
99 queries, under OUT (a cache under /tmp, not the repository).

usage: generate.py SF OUT
The extension comes from PyPI (duckdb-extension-tpcds, loaded from its wheel: the DuckDB
extension repository is not reachable from every machine).
"""
import glob
import os
import re
import sys

import duckdb
import duckdb_extension_tpcds

sf, out = float(sys.argv[1]), sys.argv[2]
os.makedirs(os.path.join(out, "data"), exist_ok=True)
os.makedirs(os.path.join(out, "queries"), exist_ok=True)
con = duckdb.connect()
ext = glob.glob(os.path.join(os.path.dirname(duckdb_extension_tpcds.__file__), "extensions", "*", "tpcds.duckdb_extension"))
con.execute(f"LOAD '{ext[0]}'")
con.execute(f"CALL dsdgen(sf={sf})")

PG_TYPE = {"INTEGER": "integer", "BIGINT": "bigint", "DATE": "date", "VARCHAR": "varchar", "TIME": "time"}
tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall()]
schema = []
for table in tables:
    cols = con.execute(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    defs = []
    for name, dtype, nullable in cols:
        pg = PG_TYPE.get(dtype) or re.sub(r"^DECIMAL", "numeric", dtype).lower()
        defs.append(f"    {name} {pg}{'' if nullable == 'YES' else ' NOT NULL'}")
    schema.append(f"CREATE TABLE {table} (\n" + ",\n".join(defs) + "\n);")
    con.execute(f"COPY {table} TO '{out}/data/{table}.csv' (HEADER false, DELIMITER '|', NULL '')")
with open(os.path.join(out, "schema.sql"), "w") as f:
    f.write("\n".join(schema) + "\n")
with open(os.path.join(out, "tables"), "w") as f:
    f.write("\n".join(tables) + "\n")
for nr, query in con.execute("SELECT query_nr, query FROM tpcds_queries() ORDER BY 1").fetchall():
    with open(os.path.join(out, "queries", f"{nr:02d}.sql"), "w") as f:
        f.write(query.strip().rstrip(";") + ";\n")
