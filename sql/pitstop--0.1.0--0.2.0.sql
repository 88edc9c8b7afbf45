-- pitstop 0.1.0 -> 0.2.0 (ALTER EXTENSION pitstop UPDATE). The result must equal a fresh
-- CREATE EXTENSION pitstop of 0.2.0 (tests/tests/upgrade.rs compares the two): new or changed
-- objects are written here exactly as in sql/schema/*.sql and the generated functions.

-- maintenance_log: an action stopped by Ctrl-C is logged 'cancelled'.
ALTER TABLE maintenance_log DROP CONSTRAINT maintenance_log_outcome_check,
    ADD CONSTRAINT maintenance_log_outcome_check
        CHECK (outcome IN ('running', 'ok', 'failed', 'skipped', 'cancelled'));

-- unhelped_queries gained an OUT column (role): a changed result type needs a new function.
DROP FUNCTION unhelped_queries(text[], double precision, integer, double precision, integer, double precision);
CREATE  FUNCTION "unhelped_queries"(
	"queries" TEXT[] DEFAULT NULL, /* :: std :: option :: Option < Vec < Option < String > > > */
	"budget_mb" double precision DEFAULT NULL, /* Option < f64 > */
	"max_indexes" INT DEFAULT NULL, /* Option < i32 > */
	"min_improvement" double precision DEFAULT 0.05, /* Option < f64 > */
	"top_n" INT DEFAULT 100, /* Option < i32 > */
	"min_workload_gain" double precision DEFAULT 0.01 /* Option < f64 > */
) RETURNS TABLE (
	"queryid" bigint,  /* Option < i64 > */
	"query" TEXT,  /* String */
	"calls" double precision,  /* f64 */
	"cost" double precision,  /* Option < f64 > */
	"reason" TEXT,  /* String */
	"role" TEXT  /* String */
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'unhelped_queries_wrapper';

-- Relay tracking moves from trigger arguments to a registry (sql/schema/cache.sql): the
-- registry, the functions around it, and the changed trigger body and cache_track/untrack.
-- Tracked tables (cache_track). The outbox trigger takes its tags from here, never from its
-- own arguments, and writes nothing for a table that is neither tracked nor a partition of a
-- tracked one: attaching the trigger elsewhere gains nothing. Tags invalidate application
-- keys in Redis, so tracking is configuration: only roles granted the right to write this
-- registry (and to run cache_track/cache_untrack) track tables, and then only tables they may
-- create triggers on (the TRIGGER privilege; owners have it), enforced by row security so
-- that cache_track runs with its caller's rights. regclass, not oid, so that a restored dump
-- maps each row to its table (pg_upgrade accepts regclass).
CREATE TABLE cache_tracking (
    relid   regclass PRIMARY KEY,
    tags    text[]   NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE cache_tracking IS 'Tables tracked for pitstop''s Redis relay, with their extra tags (see cache_track)';
SELECT pg_catalog.pg_extension_config_dump('cache_tracking', '');
ALTER TABLE cache_tracking ENABLE ROW LEVEL SECURITY;
CREATE POLICY cache_tracking_read ON cache_tracking FOR SELECT USING (true);
CREATE POLICY cache_tracking_write ON cache_tracking FOR ALL
    USING (pg_catalog.has_table_privilege(relid, 'TRIGGER'))
    WITH CHECK (pg_catalog.has_table_privilege(relid, 'TRIGGER'));
GRANT SELECT ON cache_tracking TO PUBLIC;

-- The tracked tables whose rows a write to rel changes: rel itself and the partitioned tables
-- it is (recursively) a partition of. One index probe: it runs for every writing statement.
CREATE FUNCTION cache_tracking_governing(rel oid) RETURNS SETOF cache_tracking
LANGUAGE sql STABLE AS $$
    SELECT t.* FROM @extschema@.cache_tracking t
    WHERE t.relid = ANY (rel || ARRAY(SELECT a.relid FROM pg_catalog.pg_partition_ancestors(rel) a))
$$;

-- One outbox row and one NOTIFY per tracked table whose rows a write to rel changes, tagged
-- as that table. Only the SECURITY DEFINER functions below call it.
CREATE FUNCTION invalidation_outbox_emit(rel oid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t record;
    schema_name name;
    table_name name;
    new_id bigint;
BEGIN
    FOR t IN SELECT g.relid, g.tags FROM @extschema@.cache_tracking_governing(rel) g LOOP
        -- Apart from the loop: a join would be planned for the registry's unknown size.
        SELECT n.nspname, c.relname INTO schema_name, table_name
        FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.oid = t.relid;
        INSERT INTO @extschema@.invalidation_outbox (relation, relid, tags)
        VALUES (format('%I.%I', schema_name, table_name), t.relid,
                ARRAY[current_database() || '.' || schema_name || '.' || table_name] || t.tags)
        RETURNING id INTO new_id;
        PERFORM pg_catalog.pg_notify('pitstop_invalidation',
            json_build_object('id', new_id, 'relation', format('%I.%I', schema_name, table_name))::text);
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION invalidation_outbox_emit(oid) FROM PUBLIC;

-- Statement-level trigger body. SECURITY DEFINER so that application roles writing a tracked
-- table need no privileges on the outbox; search_path is pinned for that reason. Only
-- cache_tracking_sync attaches it (PostgreSQL checks EXECUTE when a trigger is created).
CREATE OR REPLACE FUNCTION invalidation_outbox_append() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM @extschema@.invalidation_outbox_emit(TG_RELID);
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION invalidation_outbox_append() FROM PUBLIC;

-- Makes the triggers of rel and of all its partitions (at any depth) agree with the registry:
-- a table that is tracked, or a partition of a tracked one, has the statement trigger, others
-- have none; then removes the trigger from partitions detached from a tracked table.
-- SECURITY DEFINER since no one else may attach the trigger function; callable by everyone
-- because it only carries out what the registry, which only those who may create triggers on
-- a table can change, already says.
CREATE FUNCTION cache_tracking_sync(rel regclass) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    fn oid := '@extschema@.invalidation_outbox_append()'::regprocedure;
    t record;
BEGIN
    FOR t IN
        SELECT c.oid::regclass AS relid, c.relkind, g.tgfoid, g.tgnargs,
               EXISTS (SELECT 1 FROM @extschema@.cache_tracking_governing(c.oid)) AS wanted
        FROM (SELECT rel::oid AS relid UNION SELECT p.relid FROM pg_partition_tree(rel) p) tree
        JOIN pg_class c ON c.oid = tree.relid
        LEFT JOIN pg_trigger g ON g.tgrelid = c.oid AND g.tgname = 'pitstop_invalidation'
        WHERE c.relkind IN ('r', 'p', 'f')
    LOOP
        IF t.wanted AND (t.tgfoid IS DISTINCT FROM fn OR t.tgnargs <> 0) THEN
            IF t.tgfoid IS NOT NULL THEN
                EXECUTE format('DROP TRIGGER pitstop_invalidation ON %s', t.relid);
            END IF;
            -- Foreign tables cannot have TRUNCATE triggers.
            EXECUTE format('CREATE TRIGGER pitstop_invalidation AFTER INSERT OR UPDATE OR DELETE%s ON %s
                            FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.invalidation_outbox_append()',
                           CASE WHEN t.relkind = 'f' THEN '' ELSE ' OR TRUNCATE' END, t.relid);
        ELSIF NOT t.wanted AND t.tgfoid = fn THEN
            EXECUTE format('DROP TRIGGER pitstop_invalidation ON %s', t.relid);
        END IF;
    END LOOP;
    FOR t IN
        SELECT g.tgrelid::regclass AS relid FROM pg_trigger g
        WHERE g.tgfoid = fn AND g.tgname = 'pitstop_invalidation'
          AND NOT EXISTS (SELECT 1 FROM @extschema@.cache_tracking_governing(g.tgrelid))
    LOOP
        EXECUTE format('DROP TRIGGER pitstop_invalidation ON %s', t.relid);
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION cache_track(rel regclass, tags text[] DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF rel IS NULL THEN
        RAISE EXCEPTION 'argument "rel" must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = rel) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '"%" is not a table', rel USING ERRCODE = 'wrong_object_type',
            HINT = 'Track the tables a view or materialized view reads.';
    END IF;
    -- Any role may create one, and its rows are never shared with another session.
    IF (SELECT relpersistence FROM pg_class WHERE oid = rel) = 't' THEN
        RAISE EXCEPTION 'temporary table "%" cannot be tracked', rel USING ERRCODE = 'feature_not_supported';
    END IF;
    IF NOT has_table_privilege(rel, 'TRIGGER') THEN
        RAISE EXCEPTION 'permission denied to track table %', rel USING ERRCODE = 'insufficient_privilege',
            HINT = 'Tracking a table needs the TRIGGER privilege on it, which its owner has.';
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(tags) t WHERE t IS NULL OR t = '') THEN
        RAISE EXCEPTION 'tags must not be NULL or empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO @extschema@.cache_tracking AS t (relid, tags) VALUES (rel, coalesce(tags, '{}'))
    ON CONFLICT (relid) DO UPDATE SET tags = EXCLUDED.tags;
    PERFORM @extschema@.cache_tracking_sync(rel);
END
$$;

REVOKE ALL ON FUNCTION cache_track(regclass, text[]) FROM PUBLIC;

CREATE OR REPLACE FUNCTION cache_untrack(rel regclass) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    existed boolean;
BEGIN
    IF rel IS NULL THEN
        RAISE EXCEPTION 'argument "rel" must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT has_table_privilege(rel, 'TRIGGER') THEN
        RAISE EXCEPTION 'permission denied to untrack table %', rel USING ERRCODE = 'insufficient_privilege',
            HINT = 'Untracking a table needs the TRIGGER privilege on it, which its owner has.';
    END IF;
    DELETE FROM @extschema@.cache_tracking WHERE relid = rel;
    existed := FOUND;
    PERFORM @extschema@.cache_tracking_sync(rel);
    RETURN existed;
END
$$;

REVOKE ALL ON FUNCTION cache_untrack(regclass) FROM PUBLIC;

-- Tables tracked by 0.1.0 carry their tags as the arguments of their pitstop_invalidation
-- trigger: register them with those tags, then let cache_tracking_sync replace the trigger
-- with the argument-less one (and give it to their partitions). Temporary tables are no
-- longer tracked (their old trigger now writes nothing).
DO $migrate$
DECLARE
    old record;
    rest bytea;
    cut integer;
    tags text[];
BEGIN
    FOR old IN
        SELECT g.tgrelid::regclass AS relid, g.tgargs
        FROM pg_catalog.pg_trigger g
        JOIN pg_catalog.pg_class c ON c.oid = g.tgrelid
        WHERE g.tgname = 'pitstop_invalidation'
          AND g.tgfoid = '@extschema@.invalidation_outbox_append()'::regprocedure
          AND c.relpersistence <> 't'
        ORDER BY g.tgrelid
    LOOP
        -- tgargs: each argument followed by a zero byte; empty ones were never tags.
        tags := '{}';
        rest := old.tgargs;
        WHILE length(rest) > 0 LOOP
            cut := coalesce(nullif(position(decode('00', 'hex') IN rest), 0), length(rest) + 1);
            IF cut > 1 THEN
                tags := tags || convert_from(substring(rest FROM 1 FOR cut - 1), getdatabaseencoding());
            END IF;
            rest := substring(rest FROM cut + 1);
        END LOOP;
        INSERT INTO @extschema@.cache_tracking (relid, tags) VALUES (old.relid, tags)
        ON CONFLICT (relid) DO NOTHING;
        PERFORM @extschema@.cache_tracking_sync(old.relid);
        -- 0.1.0 let any role attach this trigger with tags of its choosing: show what moves
        -- into the registry, for the DBA to review (cache_untrack what nobody meant).
        RAISE WARNING 'pitstop: table % (owner %) is now tracked with tags %', old.relid,
            (SELECT c.relowner::regrole FROM pg_catalog.pg_class c WHERE c.oid = old.relid), tags
            USING HINT = 'Before 0.2.0 any role could attach the relay trigger; review SELECT * FROM pitstop.cache_tracked and run pitstop.cache_untrack() for tables nobody meant to track.';
    END LOOP;
END
$migrate$;

-- Partitions created in or attached to a tracked table get the trigger, detached ones lose
-- it. Any ALTER TABLE of a tracked table (or of a partition of one) also invalidates it: ATTACH
-- and DETACH PARTITION add and remove rows, a column type change rewrites them. Event
-- triggers need a superuser to create; CREATE EXTENSION pitstop is one (not trusted).
CREATE FUNCTION cache_tracking_ddl() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cmd record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM @extschema@.cache_tracking) THEN
        RETURN;
    END IF;
    FOR cmd IN
        SELECT DISTINCT d.objid, d.command_tag FROM pg_event_trigger_ddl_commands() d
        WHERE d.object_type IN ('table', 'foreign table')
          AND EXISTS (SELECT 1 FROM @extschema@.cache_tracking_governing(d.objid))
    LOOP
        PERFORM @extschema@.cache_tracking_sync(cmd.objid::regclass);
        IF cmd.command_tag = 'ALTER TABLE' THEN
            PERFORM @extschema@.invalidation_outbox_emit(cmd.objid);
        END IF;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION cache_tracking_ddl() FROM PUBLIC;
CREATE EVENT TRIGGER pitstop_cache_tracking_ddl ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'CREATE FOREIGN TABLE', 'ALTER TABLE')
    EXECUTE FUNCTION cache_tracking_ddl();

-- A dropped table leaves the registry (its oid could be reused).
CREATE FUNCTION cache_tracking_dropped() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM @extschema@.cache_tracking t
    USING pg_event_trigger_dropped_objects() d
    WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0 AND d.objid = t.relid;
END
$$;
REVOKE ALL ON FUNCTION cache_tracking_dropped() FROM PUBLIC;
CREATE EVENT TRIGGER pitstop_cache_tracking_dropped ON sql_drop EXECUTE FUNCTION cache_tracking_dropped();

CREATE OR REPLACE VIEW cache_tracked AS
SELECT t.relid AS relation,
       ARRAY[current_database() || '.' || n.nspname || '.' || c.relname] || t.tags AS tags
FROM cache_tracking t
JOIN pg_catalog.pg_class c ON c.oid = t.relid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace;
