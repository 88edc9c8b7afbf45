-- pitstop.suggest_indexes: the share of each table's updates that were not HOT (and so
-- entered every index), NULL when the table has seen no update.
SELECT t.relid,
       (t.n_tup_upd - t.n_tup_hot_upd)::float8 / nullif(t.n_tup_upd, 0) AS non_hot_share
FROM pg_catalog.pg_stat_user_tables AS t
WHERE t.relid = ANY ($1)
