# DuckDB's TPC-DS query texts → PostgreSQL: changes only where PostgreSQL refuses a query.
# With duckdb-extension-tpcds 1.5.5 none is needed: all 99 queries run unchanged on
# PostgreSQL 15 (DuckDB already writes its date arithmetic as literal ranges of
# cast('…' AS date)). Keep one line per change here, with its reason.
