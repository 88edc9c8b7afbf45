-- The server's autovacuum settings, one row.
SELECT current_setting('autovacuum')::bool,
       current_setting('autovacuum_vacuum_threshold')::float8,
       current_setting('autovacuum_vacuum_scale_factor')::float8,
       current_setting('autovacuum_analyze_threshold')::float8,
       current_setting('autovacuum_analyze_scale_factor')::float8,
       current_setting('autovacuum_vacuum_insert_threshold')::float8,
       current_setting('autovacuum_vacuum_insert_scale_factor')::float8,
       current_setting('autovacuum_freeze_max_age')::float8,
       current_setting('autovacuum_multixact_freeze_max_age')::float8
