-- pitstop.suggest_indexes: rows each table's indexes had to absorb since the statistics
-- reset (inserts and non-HOT updates; deletes touch indexes only at vacuum), scaled to the
-- period pg_stat_statements covers ($2 = that period's length in seconds, NULL if unknown).
SELECT t.relid,
       (t.n_tup_ins + t.n_tup_upd - t.n_tup_hot_upd)::float8
         * coalesce($2 / nullif(extract(epoch FROM now() - coalesce(d.stats_reset, pg_catalog.pg_postmaster_start_time()))::float8, 0), 1)
         AS maintained_rows
FROM pg_catalog.pg_stat_user_tables AS t
JOIN pg_catalog.pg_stat_database AS d ON d.datname = current_database()
WHERE t.relid = ANY ($1)
