-- Live server facts for config_advice: connections, the size of every database the caller may
-- connect to, temp files written since statistics were reset, where the data directory is
-- (NULL unless the caller may read it) and the current max_wal_size in MB.
SELECT current_setting('max_connections')::float8 AS max_connections,
       (SELECT coalesce(sum(CASE WHEN has_database_privilege(d.oid, 'CONNECT')
                                 THEN pg_catalog.pg_database_size(d.oid) END), 0)
          FROM pg_catalog.pg_database d)::float8 AS database_bytes,
       (SELECT coalesce(sum(temp_files), 0) FROM pg_catalog.pg_stat_database)::float8 AS temp_files,
       (SELECT coalesce(sum(temp_bytes), 0) FROM pg_catalog.pg_stat_database)::float8 AS temp_bytes,
       (SELECT setting FROM pg_catalog.pg_settings WHERE name = 'data_directory') AS data_directory,
       (SELECT setting::float8 FROM pg_catalog.pg_settings WHERE name = 'max_wal_size') AS max_wal_size_mb
