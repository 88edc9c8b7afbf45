-- Views, tables and functions of the result cache. Runs after the Rust functions exist.

CREATE VIEW cache_entries AS
SELECT e.query,
       r.rolname                                   AS role,
       d.datname                                   AS database,
       e.relations::regclass[]                     AS relations,
       e.bytes,
       e.hits,
       e.created_at,
       now() - e.created_at                        AS age,
       e.expires_at,
       e.fresh
FROM @extschema@.cache_entries_raw() AS e
LEFT JOIN pg_catalog.pg_roles r ON r.oid = e.roleid
LEFT JOIN pg_catalog.pg_database d ON d.oid = e.dbid
ORDER BY e.hits DESC;
GRANT SELECT ON cache_entries TO pg_monitor;

REVOKE ALL ON FUNCTION cache_clear() FROM PUBLIC;
REVOKE ALL ON FUNCTION cache_invalidate(regclass) FROM PUBLIC;

-- Outbox for the daemon's Redis relay: one row per writing statement on a tracked table,
-- inserted in the writing transaction (so a rollback leaves nothing), plus a NOTIFY that
-- wakes the relay. The relay reads rows in id order from its saved cursor.
CREATE TABLE invalidation_outbox (
    id          bigserial PRIMARY KEY,
    database    name        NOT NULL DEFAULT current_database(),
    relation    text        NOT NULL,
    relid       oid         NOT NULL,
    tags        text[]      NOT NULL,
    xid         xid8        NOT NULL DEFAULT pg_current_xact_id(),
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE invalidation_outbox IS 'Invalidations of tracked tables, for pitstop''s Redis relay';
-- The relay reads by transaction id: every transaction below the oldest running one has
-- finished, so all of its rows are visible (ids alone can commit out of order).
CREATE INDEX invalidation_outbox_xid ON invalidation_outbox (xid);

-- Where each relay consumer is: every outbox row with xid < horizon has been delivered.
CREATE TABLE relay_state (
    consumer    text PRIMARY KEY,
    horizon     xid8        NOT NULL DEFAULT '0',
    delivered   bigint      NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE relay_state IS 'Cursor of each pitstop relay: outbox rows with xid below horizon are delivered';

-- Statement-level trigger body. SECURITY DEFINER so that application roles writing a tracked
-- table need no privileges on the outbox; search_path is pinned for that reason.
CREATE FUNCTION invalidation_outbox_append() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    relation_name text := format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME);
    tags text[] := ARRAY[current_database() || '.' || TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME] || TG_ARGV;
    new_id bigint;
BEGIN
    INSERT INTO @extschema@.invalidation_outbox (relation, relid, tags)
    VALUES (relation_name, TG_RELID, tags)
    RETURNING id INTO new_id;
    PERFORM pg_notify('pitstop_invalidation', json_build_object('id', new_id, 'relation', relation_name)::text);
    RETURN NULL;
END
$$;

CREATE FUNCTION cache_track(rel regclass, tags text[] DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    args text := '';
BEGIN
    IF rel IS NULL THEN
        RAISE EXCEPTION 'argument "rel" must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF (SELECT relkind FROM pg_catalog.pg_class WHERE oid = rel) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '"%" is not a table', rel USING ERRCODE = 'wrong_object_type',
            HINT = 'Track the tables a view or materialized view reads.';
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(tags) t WHERE t IS NULL OR t = '') THEN
        RAISE EXCEPTION 'tags must not be NULL or empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT coalesce(string_agg(quote_literal(t), ', '), '') INTO args FROM unnest(tags) t;
    EXECUTE format('DROP TRIGGER IF EXISTS pitstop_invalidation ON %s', rel);
    EXECUTE format('CREATE TRIGGER pitstop_invalidation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s
                    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.invalidation_outbox_append(%s)', rel, args);
END
$$;

CREATE FUNCTION cache_untrack(rel regclass) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    existed boolean;
BEGIN
    SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = rel AND tgname = 'pitstop_invalidation')
      INTO existed;
    EXECUTE format('DROP TRIGGER IF EXISTS pitstop_invalidation ON %s', rel);
    RETURN existed;
END
$$;

CREATE VIEW cache_tracked AS
SELECT t.tgrelid::regclass AS relation,
       ARRAY[current_database() || '.' || n.nspname || '.' || c.relname]
         || array_remove(string_to_array(encode(t.tgargs, 'escape'), '\000'), '') AS tags
FROM pg_catalog.pg_trigger t
JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE t.tgname = 'pitstop_invalidation';
GRANT SELECT ON cache_tracked TO pg_monitor;
