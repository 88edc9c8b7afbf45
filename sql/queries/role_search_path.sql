-- The search_path a new session of role $1 starts with in this database: ALTER ROLE … IN
-- DATABASE, then ALTER ROLE, ALTER DATABASE, ALTER ROLE ALL; else the server's own value (the
-- built-in one when the caller's own value comes from settings of the caller's role).
WITH db AS (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()),
     role_settings AS (
         SELECT s.setrole, s.setdatabase, substr(c, length('search_path=') + 1) AS value
         FROM pg_catalog.pg_db_role_setting s CROSS JOIN LATERAL unnest(s.setconfig) AS c
         WHERE c LIKE 'search\_path=%' AND s.setdatabase IN ((SELECT oid FROM db), 0))
SELECT coalesce(
    (SELECT value FROM role_settings WHERE setrole IN ($1, 0)
     ORDER BY setrole = 0, setdatabase = 0 LIMIT 1),
    (SELECT CASE WHEN EXISTS (SELECT 1 FROM role_settings WHERE setrole IN ((SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user), 0))
                 THEN boot_val ELSE reset_val END
     FROM pg_catalog.pg_settings WHERE name = 'search_path')) AS search_path
