-- The server's autovacuum settings, one row.
SELECT current_setting('autovacuum')::bool                               AS autovacuum,
       current_setting('autovacuum_vacuum_threshold')::float8             AS vacuum_threshold,
       current_setting('autovacuum_vacuum_scale_factor')::float8          AS vacuum_scale_factor,
       current_setting('autovacuum_analyze_threshold')::float8            AS analyze_threshold,
       current_setting('autovacuum_analyze_scale_factor')::float8         AS analyze_scale_factor,
       current_setting('autovacuum_vacuum_insert_threshold')::float8      AS insert_threshold,
       current_setting('autovacuum_vacuum_insert_scale_factor')::float8   AS insert_scale_factor,
       current_setting('autovacuum_freeze_max_age')::float8               AS freeze_max_age,
       current_setting('autovacuum_multixact_freeze_max_age')::float8     AS multixact_freeze_max_age
