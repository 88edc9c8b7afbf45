-- The settings config_advice covers ($1), as pg_settings and SHOW present them.
SELECT name, setting, unit, context, current_setting(name) AS shown
FROM pg_catalog.pg_settings
WHERE name = ANY($1)
