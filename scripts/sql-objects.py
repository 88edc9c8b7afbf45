#!/usr/bin/env python3
"""Prints the rows of docs/sql-objects.md: every function, view, table, type and event trigger
the extension creates, with the file that defines it (and the Rust function behind a function).

Usage: cargo pgrx schema -p pitstop pg15 -o /tmp/pitstop.sql
       scripts/sql-objects.py /tmp/pitstop.sql

The #[pg_extern] functions come from pgrx's own record in that output (`-- file:line` and
`-- pitstop::module::rust_fn` above each CREATE FUNCTION). Every other object is found where
its CREATE statement is written: a sql/schema/*.sql file or an extension_sql! block.
tests/tests/sql_objects.rs checks the page against an installed extension and the code.
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
KINDS = {
    "function": "FUNCTION",
    "view": "VIEW",
    "table": "TABLE",
    "type": "TYPE",
    "event trigger": "EVENT TRIGGER",
}


def sources():
    files = sorted((ROOT / "sql" / "schema").glob("*.sql"))
    files += sorted(p for p in (ROOT / "pg_ext" / "src").rglob("*.rs") if "_tests" not in p.name)
    return [(p.relative_to(ROOT).as_posix(), p.read_text()) for p in files]


def create_pattern(kind, name):
    return re.compile(
        r"\bCREATE\s+(OR\s+REPLACE\s+)?(MATERIALIZED\s+)?" + KINDS[kind].replace(" ", r"\s+")
        + r"\s+(IF\s+NOT\s+EXISTS\s+)?(pitstop\.)?\"?" + re.escape(name) + r"\b",
        re.IGNORECASE,
    )


def main(schema_path):
    schema = pathlib.Path(schema_path).read_text()
    files = sources()
    rows = {}
    # pgrx's entities: `-- file:line`, `-- pitstop::path::rust_fn`, `CREATE  FUNCTION "name"`.
    extern = re.compile(
        r"^-- (pg_ext/src/\S+\.rs):\d+\n-- pitstop::(?:\w+::)*(\w+)\n"
        r"(?:--.*\n)*CREATE\s+FUNCTION\s+\"(\w+)\"",
        re.MULTILINE,
    )
    for m in extern.finditer(schema):
        rows[(m.group(3), "function")] = (m.group(1), m.group(2), None)
    plain = re.compile(
        r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:MATERIALIZED\s+)?"
        r"(FUNCTION|VIEW|TABLE|TYPE|EVENT\s+TRIGGER)\s+(?:IF\s+NOT\s+EXISTS\s+)?(?:pitstop\.)?(\w+)",
        re.MULTILINE | re.IGNORECASE,
    )
    for m in plain.finditer(schema):
        kind = " ".join(m.group(1).lower().split())
        name = m.group(2)
        if (name, kind) in rows:
            continue
        where = [path for path, text in files if create_pattern(kind, name).search(text)]
        if len(where) != 1:
            sys.exit(f"{kind} {name}: defined in {where or 'no file'}")
        rust = None
        if kind == "function":
            # A hand-written C function: AS 'MODULE_PATHNAME', 'symbol'.
            text = dict(files)[where[0]]
            stmt = text[create_pattern(kind, name).search(text).start():]
            stmt = stmt[: stmt.find(";")]
            symbol = re.search(r"'MODULE_PATHNAME'\s*,\s*'(\w+)'", stmt)
            if symbol:
                rust_files = [p for p, t in files if re.search(r"\bfn " + symbol.group(1) + r"\b", t)]
                if len(rust_files) != 1:
                    sys.exit(f"function {name}: fn {symbol.group(1)} in {rust_files or 'no file'}")
                rust = (symbol.group(1), rust_files[0])
        rows[(name, kind)] = (where[0], None, rust)
    for (name, kind), (path, rust_fn, rust) in sorted(rows.items()):
        if rust_fn:
            entry = f"`{rust_fn}`"
        elif rust:
            entry = f"`{rust[0]}`" + ("" if rust[1] == path else f" in `{rust[1]}`")
        else:
            entry = "SQL"
        print(f"| `{name}` | {kind} | `{path}` | {entry} |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
