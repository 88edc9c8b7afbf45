-- Did an index help? pitstop.suggest_indexes remembers what it suggested over
-- pg_stat_statements (when its caller may write here); the snapshot job notes when a valid
-- index matching a suggestion appears; index_effect compares the statements the suggestion
-- was meant for in the snapshots before and after.

CREATE TABLE index_suggestions (
    id                   bigserial   PRIMARY KEY,
    dbid                 oid         NOT NULL,
    relid                oid         NOT NULL,
    table_name           text        NOT NULL,
    -- The index's key columns in order (0 for an expression, as in pg_index.indkey) and its
    -- INCLUDE columns, as attribute numbers: an index matches on these, on being partial, on
    -- its access method, key_expressions, predicate, key_opclasses and key_options.
    key_attnums          int2[]      NOT NULL,
    include_attnums      int2[]      NOT NULL,
    partial              boolean     NOT NULL,
    ddl                  text        NOT NULL,
    -- The pg_stat_statements statements it was estimated to help.
    queryids             bigint[]    NOT NULL,
    improvement_pct      float8,
    first_suggested_at   timestamptz NOT NULL,
    last_suggested_at    timestamptz NOT NULL,
    -- Set when a matching index is first seen.
    index_oid            oid,
    index_name           text,
    built_seen_at        timestamptz,
    -- The last snapshot taken before it was seen: the end of the "before" window.
    before_until         timestamptz,
    -- The table's index-maintaining writes (inserts, non-HOT updates, deletes) when seen.
    table_writes_at_seen bigint,
    -- Since 0.4.0 (its update adds the columns last, as here). The access method (pg_am.amname).
    access_method        text        NOT NULL DEFAULT 'btree',
    -- Per key, an expression's text as the server deparsed it (NULL for a column): a built
    -- index's expression key matches when pg_get_indexdef(index, n, false) prints it so
    -- (whitespace outside quotes aside: it lays a CASE out on lines), or in the parentheses it adds around
    -- what is not a function call. NULL for suggestions
    -- remembered before 0.4.0 and not suggested since: their expression keys match on the
    -- attnum 0 alone.
    key_expressions      text[],
    -- Since 0.4.0 too. A partial suggestion's WHERE clause as the server deparsed it: a built
    -- index's predicate matches when pg_get_expr prints it so (whitespace outside quotes and one
    -- pair of parentheses aside). Per key, an operator class the suggestion names (text_pattern_ops),
    -- NULL for the type's default one, which the built index must then use. Both NULL for
    -- suggestions remembered before 0.4.0 and not suggested since: they match on being partial
    -- alone, whatever the operator classes.
    predicate            text,
    key_opclasses        text[],
    -- Since 0.5.0. Per key, its sort order as pg_index.indoption records it (1 DESC, 2 NULLS
    -- FIRST): a built index matches only with the same. The OIDs of the table's indexes when
    -- the suggestion was first remembered: none of them is ever taken for it (an older index
    -- differing in what the advisor tells apart). Both NULL for suggestions remembered before
    -- 0.5.0 and not suggested since: they match sort order aside, any index of the table.
    key_options          int2[],
    existing_indexes     oid[],
    -- Since 0.5.0 too. When observe found the built index gone with no index of its definition
    -- under its name (dropped): the row is not followed to an index made later.
    dropped_seen_at      timestamptz
);
COMMENT ON TABLE index_suggestions IS
  'Indexes pitstop.suggest_indexes suggested over pg_stat_statements, and the index later built for each (pitstop.index_effect)';
CREATE UNIQUE INDEX index_suggestions_open ON index_suggestions (dbid, ddl) WHERE index_oid IS NULL;
SELECT pg_catalog.pg_extension_config_dump('index_suggestions', '');
SELECT pg_catalog.pg_extension_config_dump('index_suggestions_id_seq', '');

-- A deparsed expression without its whitespace, the insides of quoted literals and identifiers
-- kept: the key under which observe compares texts (pg_get_indexdef lays a CASE out on lines,
-- but WHERE note = 'a b' is not WHERE note = 'ab').
CREATE FUNCTION index_suggestions_squeeze(t text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(string_agg(m[1], '' ORDER BY n), '')
      FROM regexp_matches(t, '(''(?:[^'']|'''')*''|"(?:[^"]|"")*"|[^''"\s]+|[''"])', 'g') WITH ORDINALITY AS r(m, n)
$$;

-- Marks the suggestions of this database whose index now exists, re-attaches a built one
-- whose index got a new OID under its name with the same definition (REINDEX CONCURRENTLY),
-- and marks dropped a built one whose index is gone otherwise; returns how many rows it changed. Run by the snapshot job before each snapshot (its role
-- needs SELECT and UPDATE here, SELECT on query_snapshots), so the window between the previous
-- snapshot and this one, when the index was built, belongs to neither side.
CREATE FUNCTION index_suggestions_observe() RETURNS integer
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
-- The settings suggest_indexes deparses the remembered expressions under: constants print alike.
SET DateStyle = 'ISO, MDY' SET IntervalStyle = 'postgres' SET extra_float_digits = 3 AS $$
    WITH pending AS (
        SELECT s.*, s.index_oid IS NOT NULL AS rebuilt
          FROM @extschema@.index_suggestions s
         WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND s.dropped_seen_at IS NULL
           AND (s.index_oid IS NULL
                OR NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indexrelid = s.index_oid AND i.indrelid = s.relid))
    ), found AS (
        -- The newest matching index: an older one may differ in what is not recorded.
        SELECT DISTINCT ON (s.id) s.id, s.rebuilt, i.indexrelid,
               i.indexrelid::regclass::text AS index_name,
               -- Over the leaf partitions of a partitioned table (pg_partition_tree lists no
               -- other table): the parent counts none.
               (SELECT coalesce(sum(t.n_tup_ins + t.n_tup_upd - t.n_tup_hot_upd + t.n_tup_del), 0)
                  FROM (SELECT s.relid UNION SELECT p.relid FROM pg_partition_tree(s.relid) p WHERE p.isleaf) p
                  JOIN pg_stat_all_tables t ON t.relid = p.relid)::bigint AS writes
          FROM pending s
          JOIN pg_index i ON i.indrelid = s.relid AND i.indisvalid
          JOIN pg_class c ON c.oid = i.indexrelid
          JOIN pg_am a ON a.oid = c.relam AND a.amname = s.access_method
         WHERE CASE WHEN s.rebuilt THEN i.indexrelid::regclass::text = s.index_name
                    ELSE i.indexrelid <> ALL (coalesce(s.existing_indexes, '{}')) END
           AND ARRAY(SELECT k FROM unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) WITH ORDINALITY AS u(k, n) ORDER BY n)
               = s.key_attnums
           AND (s.key_options IS NULL
                OR ARRAY(SELECT o FROM unnest((i.indoption::int2[])[0:i.indnkeyatts - 1]) WITH ORDINALITY AS u(o, n) ORDER BY n)
                   = s.key_options)
           AND ARRAY(SELECT k FROM unnest((i.indkey::int2[])[i.indnkeyatts:]) AS k ORDER BY k)
               = ARRAY(SELECT k FROM unnest(s.include_attnums) AS k ORDER BY k)
           AND (i.indpred IS NOT NULL) = s.partial
           -- Suggestions are made in each column's own collation: an index in another one
           -- (b COLLATE "C") does other work, also when REINDEX gave it an OID not in
           -- existing_indexes.
           AND NOT EXISTS (SELECT 1 FROM unnest((i.indkey::int2[])[0:i.indnkeyatts - 1], i.indcollation::oid[]) AS k(attnum, coll)
                             JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                            WHERE k.coll <> a.attcollation)
           AND NOT EXISTS (SELECT 1 FROM unnest(s.key_expressions) WITH ORDINALITY AS e(expression, n)
                            WHERE e.expression IS NOT NULL
                              AND @extschema@.index_suggestions_squeeze(coalesce(pg_get_indexdef(i.indexrelid, e.n::int4, false), ''))
                                  NOT IN (@extschema@.index_suggestions_squeeze(e.expression),
                                          '(' || @extschema@.index_suggestions_squeeze(e.expression) || ')'))
           AND (s.predicate IS NULL
                OR @extschema@.index_suggestions_squeeze(coalesce(pg_get_expr(i.indpred, i.indrelid), ''))
                   IN (@extschema@.index_suggestions_squeeze(s.predicate),
                       '(' || @extschema@.index_suggestions_squeeze(s.predicate) || ')'))
           AND NOT EXISTS (SELECT 1 FROM unnest(s.key_opclasses) WITH ORDINALITY AS o(opclass, n)
                             JOIN unnest(i.indclass::oid[]) WITH ORDINALITY AS k(opclass, n) ON k.n = o.n
                             JOIN pg_opclass AS c ON c.oid = k.opclass
                            WHERE CASE WHEN o.opclass IS NULL THEN NOT c.opcdefault
                                       ELSE c.opcname <> o.opclass END)
         ORDER BY s.id, i.indexrelid DESC
    ), marked AS (
        -- A re-attached row keeps its windows and writes: the index is the one it measured.
        UPDATE @extschema@.index_suggestions s
           SET index_oid = f.indexrelid, index_name = f.index_name,
               built_seen_at = CASE WHEN f.rebuilt THEN s.built_seen_at ELSE now() END,
               table_writes_at_seen = CASE WHEN f.rebuilt THEN s.table_writes_at_seen ELSE f.writes END,
               before_until = CASE WHEN f.rebuilt THEN s.before_until
                                   ELSE (SELECT max(captured_at) FROM @extschema@.query_snapshots q
                                          WHERE q.dbid = s.dbid AND q.captured_at < now()) END
          FROM found f
         WHERE s.id = f.id
        RETURNING 1
    ), dropped AS (
        -- A built row whose index is gone, none of its definition under its name now: the
        -- index was dropped (REINDEX CONCURRENTLY leaves no such moment). Its measure is over:
        -- an index made later under the name does not take its windows.
        UPDATE @extschema@.index_suggestions s
           SET dropped_seen_at = now()
          FROM pending p
         WHERE s.id = p.id AND p.rebuilt AND NOT EXISTS (SELECT 1 FROM found f WHERE f.id = p.id)
        RETURNING 1
    )
    SELECT ((SELECT count(*) FROM marked) + (SELECT count(*) FROM dropped))::integer
$$;

-- Per statement a built suggestion (its id) was meant for: calls, mean and p95 before
-- (pg_stat_statements' counters at the last snapshot before the index was seen, i.e. since its
-- last reset) and after (the latest snapshot minus the one that opened the after window, the
-- first taken once the index was seen). Only the roles that ran the statement before count
-- after: another role's calls (its settings, its data) are no measure of the index.
CREATE FUNCTION index_suggestion_effect(suggestion bigint)
RETURNS TABLE (index_name text, queryid bigint, query text,
               calls_before bigint, mean_ms_before float8, p95_ms_before float8,
               calls_after bigint, mean_ms_after float8, p95_ms_after float8, change_pct float8)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH statement AS (
        SELECT s.index_name, s.before_until, s.dbid, q.queryid,
               (SELECT min(p.captured_at) FROM @extschema@.query_snapshots p
                 WHERE p.dbid = s.dbid AND p.captured_at >= s.built_seen_at) AS after_from
          FROM @extschema@.index_suggestions s, unnest(s.queryids) AS q(queryid)
         WHERE s.id = suggestion AND s.index_oid IS NOT NULL
           AND s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
    ), per_role AS (
        -- Each role's entry of the statement: its counters at the last snapshot before the
        -- index (b), at the snapshot that opened the after window (a0: none when the role had
        -- no entry then, i.e. zero) and the latest (a1).
        SELECT st.index_name, st.queryid, r.userid, coalesce(b.calls > 0, false) AS ran_before,
               b.calls AS b_calls, b.total_exec_time_ms AS b_total, b.latency AS b_latency,
               a0.calls AS a0_calls, a0.total_exec_time_ms AS a0_total, a0.latency AS a0_latency, a0.stats_reset AS a0_reset,
               a1.calls AS a1_calls, a1.total_exec_time_ms AS a1_total, a1.latency AS a1_latency, a1.stats_reset AS a1_reset,
               coalesce(a1.query, b.query) AS query
          FROM statement st
          JOIN (SELECT DISTINCT q.userid, q.queryid FROM @extschema@.query_snapshots q, statement st2
                 WHERE q.dbid = st2.dbid AND q.queryid = st2.queryid) r ON r.queryid = st.queryid
          LEFT JOIN @extschema@.query_snapshots b
                 ON (b.dbid, b.userid, b.queryid, b.captured_at) = (st.dbid, r.userid, st.queryid, st.before_until)
          LEFT JOIN @extschema@.query_snapshots a0
                 ON (a0.dbid, a0.userid, a0.queryid, a0.captured_at) = (st.dbid, r.userid, st.queryid, st.after_from)
          LEFT JOIN LATERAL (SELECT * FROM @extschema@.query_snapshots p
                              WHERE (p.dbid, p.userid, p.queryid) = (st.dbid, r.userid, st.queryid) AND p.captured_at >= st.after_from
                              ORDER BY p.captured_at DESC LIMIT 1) a1 ON true
    ), window_after AS (
        -- A reset of pg_stat_statements in between (its reset time changed, or a counter
        -- fell: the entry was evicted and made again): the latest counters alone, as when the
        -- entry was made after the window opened.
        SELECT *, CASE WHEN continued THEN a1_calls - a0_calls ELSE a1_calls END AS after_calls,
                  CASE WHEN continued THEN a1_total - a0_total ELSE a1_total END AS after_total
          FROM (SELECT *, a0_calls IS NOT NULL AND a1_reset IS NOT DISTINCT FROM a0_reset
                          AND a1_calls >= a0_calls AND a1_total >= a0_total AS continued
                  FROM per_role) r
    ), summed AS (
        SELECT index_name, queryid, min(query) AS query,
               (sum(b_calls) FILTER (WHERE ran_before))::bigint AS calls_before,
               sum(b_total) FILTER (WHERE ran_before) AS total_before,
               (sum(after_calls) FILTER (WHERE ran_before))::bigint AS calls_after,
               -- Each role's mean after weighs at most as many calls as it ran before: a role
               -- that ran the statement once before cannot outweigh the application after.
               sum(after_total * least(1, b_calls::float8 / nullif(after_calls, 0))) FILTER (WHERE ran_before) AS weighed_total_after,
               sum(least(after_calls, b_calls)) FILTER (WHERE ran_before) AS weighed_calls_after,
               -- Histograms of several roles do not add up here: a p95 only for one role.
               count(*) FILTER (WHERE ran_before) AS roles,
               (min(b_latency::text) FILTER (WHERE ran_before))::jsonb AS b_latency,
               (min(a1_latency::text) FILTER (WHERE ran_before))::jsonb AS a1_latency,
               CASE WHEN bool_and(continued) FILTER (WHERE ran_before)
                    THEN (min(a0_latency::text) FILTER (WHERE ran_before))::jsonb END AS a0_latency
          FROM window_after GROUP BY index_name, queryid
    ), measured AS (
        SELECT index_name, queryid, query, calls_before,
               total_before / nullif(calls_before, 0) AS mean_ms_before,
               CASE WHEN roles = 1 AND b_latency IS NOT NULL THEN @extschema@.latency_quantile(b_latency, 0.95) END AS p95_ms_before,
               calls_after,
               weighed_total_after / nullif(weighed_calls_after, 0) AS mean_ms_after,
               CASE WHEN roles = 1 AND a1_latency IS NOT NULL THEN @extschema@.latency_quantile(a1_latency, 0.95, a0_latency) END AS p95_ms_after
          FROM summed
    )
    SELECT index_name, queryid, query, calls_before, mean_ms_before, p95_ms_before,
           calls_after, mean_ms_after, p95_ms_after,
           round((100 * (mean_ms_after / nullif(mean_ms_before, 0) - 1))::numeric, 1)::float8
      FROM measured
     ORDER BY queryid
$$;
COMMENT ON FUNCTION index_suggestion_effect(bigint) IS
  'The statements a built suggestion (index_suggestions.id) was meant for: calls, mean and p95 before and after its index was built';

-- index_suggestion_effect of the latest suggestion the index was built for.
CREATE FUNCTION index_effect(index regclass)
RETURNS TABLE (index_name text, queryid bigint, query text,
               calls_before bigint, mean_ms_before float8, p95_ms_before float8,
               calls_after bigint, mean_ms_after float8, p95_ms_after float8, change_pct float8)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT e.*
      FROM (SELECT x.id FROM @extschema@.index_suggestions x
             WHERE x.index_oid = index::oid
               AND x.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
               -- Still the index that was built: an OID can be reused after a DROP.
               AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indexrelid = x.index_oid AND i.indrelid = x.relid)
             ORDER BY x.built_seen_at DESC, x.id DESC LIMIT 1) s,
           @extschema@.index_suggestion_effect(s.id) e
$$;
COMMENT ON FUNCTION index_effect(regclass) IS
  'The statements an index was suggested for: calls, mean and p95 before and after it was built, from pitstop.query_snapshots';

-- One row per suggestion whose index was built: the statements' mean before and after
-- (weighted by their calls after; a statement counts with at least 10 calls on each side),
-- the index's scans and size and the writes it has had to follow since (over the partitions of
-- a partitioned table), and a verdict. The DROP only for an index that did not help: its
-- statements less than 10 % faster (never scanned, or scanned to no gain). A partitioned
-- index cannot be dropped CONCURRENTLY: its DROP INDEX locks the table.
CREATE VIEW index_effects AS
WITH e AS (
    SELECT s.id, x.*
      FROM @extschema@.index_suggestions s
     CROSS JOIN LATERAL @extschema@.index_suggestion_effect(s.id) x
     WHERE s.index_oid IS NOT NULL
       AND s.dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
       AND EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indexrelid = s.index_oid AND i.indrelid = s.relid)
), summary AS (
    SELECT id,
           count(*) FILTER (WHERE calls_before > 0 AND calls_after > 0) AS statements_called,
           count(*) FILTER (WHERE calls_before >= 10 AND calls_after >= 10) AS statements_measured,
           sum(calls_after * mean_ms_before) FILTER (WHERE calls_before >= 10 AND calls_after >= 10)
             / nullif(sum(calls_after) FILTER (WHERE calls_before >= 10 AND calls_after >= 10), 0) AS mean_ms_before,
           sum(calls_after * mean_ms_after) FILTER (WHERE calls_before >= 10 AND calls_after >= 10)
             / nullif(sum(calls_after) FILTER (WHERE calls_before >= 10 AND calls_after >= 10), 0) AS mean_ms_after
      FROM e GROUP BY id
), judged AS (
    SELECT s.id, c.relkind = 'I' AS partitioned,
           CASE WHEN coalesce(m.statements_called, 0) = 0
                  THEN 'not measured yet: needs a snapshot before and two after it was built, with calls'
                WHEN m.statements_measured = 0
                  THEN 'too few calls yet: needs 10 calls of a statement before it was built and 10 after'
                WHEN m.mean_ms_after <= 0.9 * m.mean_ms_before AND ix.scans > 0
                  THEN 'helped: the statements it was meant for got faster'
                -- Faster with no scan counted: the statistics may have been reset since (no
                -- DROP either way while the statements are faster).
                WHEN m.mean_ms_after <= 0.9 * m.mean_ms_before
                     AND (SELECT d.stats_reset > s.built_seen_at FROM pg_catalog.pg_stat_database d WHERE d.datid = s.dbid)
                  THEN 'helped: the statements it was meant for got faster (its scans were reset since it was built)'
                WHEN m.mean_ms_after <= 0.9 * m.mean_ms_before
                  THEN 'unclear: the statements it was meant for got faster without scanning it'
                WHEN ix.scans = 0
                  THEN 'did not help: never used'
                ELSE 'did not help: the statements it was meant for are not faster'
           END AS verdict,
           ix.scans, ix.bytes, w.writes
      FROM @extschema@.index_suggestions s
      JOIN pg_catalog.pg_class c ON c.oid = s.index_oid
      LEFT JOIN summary m ON m.id = s.id
      -- A partitioned index's and table's statistics are their leaf partitions' (the parent
      -- has none; pg_partition_tree lists no other relation).
     CROSS JOIN LATERAL (SELECT coalesce(sum(st.idx_scan), 0)::bigint AS scans,
                                coalesce(sum(pg_catalog.pg_relation_size(p.relid)), 0)::bigint AS bytes
                           FROM (SELECT s.index_oid AS relid
                                 UNION SELECT p.relid FROM pg_catalog.pg_partition_tree(s.index_oid) p WHERE p.isleaf) p
                           LEFT JOIN pg_catalog.pg_stat_all_indexes st ON st.indexrelid = p.relid) ix
     CROSS JOIN LATERAL (SELECT coalesce(sum(t.n_tup_ins + t.n_tup_upd - t.n_tup_hot_upd + t.n_tup_del), 0)::bigint AS writes
                           FROM (SELECT s.relid
                                 UNION SELECT p.relid FROM pg_catalog.pg_partition_tree(s.relid) p WHERE p.isleaf) p
                           JOIN pg_catalog.pg_stat_all_tables t ON t.relid = p.relid) w
)
SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) AS index_name,
       s.table_name,
       s.ddl AS suggested_ddl,
       s.first_suggested_at,
       s.built_seen_at,
       coalesce(m.statements_measured, 0) AS statements_measured,
       cardinality(s.queryids) AS statements_suggested_for,
       round(m.mean_ms_before::numeric, 3)::float8 AS mean_ms_before,
       round(m.mean_ms_after::numeric, 3)::float8 AS mean_ms_after,
       round((100 * (m.mean_ms_after / nullif(m.mean_ms_before, 0) - 1))::numeric, 1)::float8 AS change_pct,
       j.scans AS index_scans,
       j.bytes AS index_bytes,
       greatest(j.writes - s.table_writes_at_seen, 0) AS table_writes_since,
       CASE WHEN j.partitioned AND starts_with(j.verdict, 'did not help')
              THEN j.verdict || ' (a partitioned index: its DROP cannot be CONCURRENTLY and locks the table)'
            ELSE j.verdict
       END AS verdict,
       CASE WHEN starts_with(j.verdict, 'did not help')
              THEN pg_catalog.format(CASE WHEN j.partitioned THEN 'DROP INDEX %I.%I;' ELSE 'DROP INDEX CONCURRENTLY %I.%I;' END,
                                     n.nspname, c.relname)
       END AS action
  FROM @extschema@.index_suggestions s
  -- Still the index that was built: an OID can be reused after a DROP.
  JOIN pg_catalog.pg_index i ON i.indexrelid = s.index_oid AND i.indrelid = s.relid
  JOIN pg_catalog.pg_class c ON c.oid = s.index_oid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN judged j ON j.id = s.id
  LEFT JOIN summary m ON m.id = s.id
 WHERE s.dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database());
COMMENT ON VIEW index_effects IS
  'Each index built on pitstop''s advice: its statements before and after, its scans, size and writes since, and whether it helped';

GRANT SELECT ON index_suggestions, index_effects TO pg_monitor;
GRANT EXECUTE ON FUNCTION index_effect(regclass), index_suggestion_effect(bigint) TO pg_monitor;
