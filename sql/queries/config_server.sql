-- Live server facts for config_advice: connections, the size of every database the caller may
-- connect to, temp files written since statistics were reset, where the data directory is
-- (NULL unless the caller may read it) and the current max_wal_size in MB.
SELECT current_setting('max_connections')::float8,
       (SELECT coalesce(sum(CASE WHEN has_database_privilege(d.oid, 'CONNECT')
                                 THEN pg_catalog.pg_database_size(d.oid) END), 0)
          FROM pg_catalog.pg_database d)::float8,
       (SELECT coalesce(sum(temp_files), 0) FROM pg_catalog.pg_stat_database)::float8,
       (SELECT coalesce(sum(temp_bytes), 0) FROM pg_catalog.pg_stat_database)::float8,
       (SELECT setting FROM pg_catalog.pg_settings WHERE name = 'data_directory'),
       (SELECT setting::float8 FROM pg_catalog.pg_settings WHERE name = 'max_wal_size')
