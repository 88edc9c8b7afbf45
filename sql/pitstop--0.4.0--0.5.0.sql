-- pitstop 0.4.0 -> 0.5.0 (ALTER EXTENSION pitstop UPDATE). The result must equal a fresh
-- CREATE EXTENSION pitstop of 0.5.0 (tests/tests/upgrade.rs compares the two): new or changed
-- objects are written here exactly as in sql/schema/*.sql and the generated functions.

-- index_effect reviewed (issue 15). index_suggestions records each key's sort order
-- (key_options, as pg_index.indoption) and the table's indexes when the suggestion was first
-- remembered (existing_indexes): an index differing only in sort order, or one that was there
-- before the advice, is no longer taken for it. Both NULL for 0.4.0's rows: they match sort
-- order aside, any index, until suggest_indexes suggests them again.
ALTER TABLE index_suggestions ADD COLUMN key_options int2[];
ALTER TABLE index_suggestions ADD COLUMN existing_indexes oid[];
-- When observe found a built row's index dropped: such a row is no longer re-attached to an
-- index made later under the same name.
ALTER TABLE index_suggestions ADD COLUMN dropped_seen_at timestamptz;

CREATE FUNCTION index_suggestions_squeeze(t text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(string_agg(m[1], '' ORDER BY n), '')
      FROM regexp_matches(t, '(''(?:[^'']|'''')*''|"(?:[^"]|"")*"|[^''"\s]+|[''"])', 'g') WITH ORDINALITY AS r(m, n)
$$;

CREATE OR REPLACE FUNCTION index_suggestions_observe() RETURNS integer
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

CREATE OR REPLACE FUNCTION index_effect(index regclass)
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

-- The same columns: each row measured by its own suggestion, partitions summed, the DROP only
-- when the statements are not 10 % faster.
CREATE OR REPLACE VIEW index_effects AS
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
GRANT EXECUTE ON FUNCTION index_suggestion_effect(bigint) TO pg_monitor;

-- One statement's snapshots (index_effect, query_history) without a scan of the whole history.
CREATE INDEX query_snapshots_statement ON query_snapshots (dbid, queryid, userid, captured_at);
