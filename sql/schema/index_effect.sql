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
    -- INCLUDE columns, as attribute numbers: an index matches on these (sort order aside), on
    -- being partial, on its access method, key_expressions, predicate and key_opclasses.
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
    -- (whitespace aside: it lays a CASE out on lines), or in the parentheses it adds around
    -- what is not a function call. NULL for suggestions
    -- remembered before 0.4.0 and not suggested since: their expression keys match on the
    -- attnum 0 alone.
    key_expressions      text[],
    -- Since 0.4.0 too. A partial suggestion's WHERE clause as the server deparsed it: a built
    -- index's predicate matches when pg_get_expr prints it so (whitespace and one pair of
    -- parentheses aside). Per key, an operator class the suggestion names (text_pattern_ops),
    -- NULL for the type's default one, which the built index must then use. Both NULL for
    -- suggestions remembered before 0.4.0 and not suggested since: they match on being partial
    -- alone, whatever the operator classes.
    predicate            text,
    key_opclasses        text[]
);
COMMENT ON TABLE index_suggestions IS
  'Indexes pitstop.suggest_indexes suggested over pg_stat_statements, and the index later built for each (pitstop.index_effect)';
CREATE UNIQUE INDEX index_suggestions_open ON index_suggestions (dbid, ddl) WHERE index_oid IS NULL;
SELECT pg_catalog.pg_extension_config_dump('index_suggestions', '');
SELECT pg_catalog.pg_extension_config_dump('index_suggestions_id_seq', '');

-- Marks the suggestions of this database whose index now exists; returns how many. Run by the
-- snapshot job before each snapshot (its role needs UPDATE here), so the window between the
-- previous snapshot and this one, when the index was built, belongs to neither side.
CREATE FUNCTION index_suggestions_observe() RETURNS integer
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
-- The settings suggest_indexes deparses the remembered expressions under: constants print alike.
SET DateStyle = 'ISO, MDY' SET IntervalStyle = 'postgres' SET extra_float_digits = 3 AS $$
    WITH found AS (
        SELECT DISTINCT ON (s.id) s.id, i.indexrelid,
               i.indexrelid::regclass::text AS index_name,
               coalesce(t.n_tup_ins + t.n_tup_upd - t.n_tup_hot_upd + t.n_tup_del, 0) AS writes
          FROM @extschema@.index_suggestions s
          JOIN pg_index i ON i.indrelid = s.relid AND i.indisvalid
          JOIN pg_class c ON c.oid = i.indexrelid
          JOIN pg_am a ON a.oid = c.relam AND a.amname = s.access_method
          LEFT JOIN pg_stat_all_tables t ON t.relid = s.relid
         WHERE s.index_oid IS NULL
           AND s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND ARRAY(SELECT k FROM unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) WITH ORDINALITY AS u(k, n) ORDER BY n)
               = s.key_attnums
           AND ARRAY(SELECT k FROM unnest((i.indkey::int2[])[i.indnkeyatts:]) AS k ORDER BY k)
               = ARRAY(SELECT k FROM unnest(s.include_attnums) AS k ORDER BY k)
           AND (i.indpred IS NOT NULL) = s.partial
           AND NOT EXISTS (SELECT 1 FROM unnest(s.key_expressions) WITH ORDINALITY AS e(expression, n)
                            WHERE e.expression IS NOT NULL
                              AND regexp_replace(coalesce(pg_get_indexdef(i.indexrelid, e.n::int4, false), ''), '\s+', '', 'g')
                                  NOT IN (regexp_replace(e.expression, '\s+', '', 'g'),
                                          '(' || regexp_replace(e.expression, '\s+', '', 'g') || ')'))
           AND (s.predicate IS NULL
                OR regexp_replace(coalesce(pg_get_expr(i.indpred, i.indrelid), ''), '\s+', '', 'g')
                   IN (regexp_replace(s.predicate, '\s+', '', 'g'),
                       '(' || regexp_replace(s.predicate, '\s+', '', 'g') || ')'))
           AND NOT EXISTS (SELECT 1 FROM unnest(s.key_opclasses) WITH ORDINALITY AS o(opclass, n)
                             JOIN unnest(i.indclass::oid[]) WITH ORDINALITY AS k(opclass, n) ON k.n = o.n
                             JOIN pg_opclass AS c ON c.oid = k.opclass
                            WHERE CASE WHEN o.opclass IS NULL THEN NOT c.opcdefault
                                       ELSE c.opcname <> o.opclass END)
         ORDER BY s.id, i.indexrelid
    ), marked AS (
        UPDATE @extschema@.index_suggestions s
           SET index_oid = f.indexrelid, index_name = f.index_name, built_seen_at = now(),
               table_writes_at_seen = f.writes,
               before_until = (SELECT max(captured_at) FROM @extschema@.query_snapshots q
                                WHERE q.dbid = s.dbid AND q.captured_at < now())
          FROM found f
         WHERE s.id = f.id
        RETURNING 1
    )
    SELECT count(*)::integer FROM marked
$$;

-- Per statement a suggestion was meant for: calls, mean and p95 before (pg_stat_statements'
-- counters at the last snapshot before the index was seen, i.e. since its last reset) and
-- after (the latest snapshot minus the first one taken once the index was seen).
CREATE FUNCTION index_effect(index regclass)
RETURNS TABLE (index_name text, queryid bigint, query text,
               calls_before bigint, mean_ms_before float8, p95_ms_before float8,
               calls_after bigint, mean_ms_after float8, p95_ms_after float8, change_pct float8)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH s AS (
        SELECT * FROM @extschema@.index_suggestions x
         WHERE x.index_oid = index::oid
           AND x.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
           -- Still the index that was built: an OID can be reused after a DROP.
           AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indexrelid = x.index_oid AND i.indrelid = x.relid)
         ORDER BY x.built_seen_at DESC LIMIT 1
    ), statement AS (
        SELECT s.index_name, s.before_until, s.built_seen_at, s.dbid, q.queryid
          FROM s, unnest(s.queryids) AS q(queryid)
    ), per_role AS (
        -- Each role's entry of the statement: its counters at the last snapshot before the
        -- index (b), the first once it was seen (a0) and the latest (a1).
        SELECT st.index_name, st.queryid, b.userid,
               b.calls AS b_calls, b.total_exec_time_ms AS b_total, b.latency AS b_latency,
               a0.calls AS a0_calls, a0.total_exec_time_ms AS a0_total, a0.latency AS a0_latency, a0.stats_reset AS a0_reset,
               a1.calls AS a1_calls, a1.total_exec_time_ms AS a1_total, a1.latency AS a1_latency, a1.stats_reset AS a1_reset,
               coalesce(a1.query, b.query) AS query
          FROM statement st
          JOIN (SELECT DISTINCT q.userid, q.queryid FROM @extschema@.query_snapshots q, statement st2
                 WHERE q.dbid = st2.dbid AND q.queryid = st2.queryid) r ON r.queryid = st.queryid
          LEFT JOIN @extschema@.query_snapshots b
                 ON (b.dbid, b.userid, b.queryid, b.captured_at) = (st.dbid, r.userid, st.queryid, st.before_until)
          LEFT JOIN LATERAL (SELECT * FROM @extschema@.query_snapshots p
                              WHERE (p.dbid, p.userid, p.queryid) = (st.dbid, r.userid, st.queryid) AND p.captured_at >= st.built_seen_at
                              ORDER BY p.captured_at LIMIT 1) a0 ON true
          LEFT JOIN LATERAL (SELECT * FROM @extschema@.query_snapshots p
                              WHERE (p.dbid, p.userid, p.queryid) = (st.dbid, r.userid, st.queryid) AND p.captured_at >= st.built_seen_at
                              ORDER BY p.captured_at DESC LIMIT 1) a1 ON true
    ), window_after AS (
        -- A reset of pg_stat_statements in between (its reset time changed, or a counter
        -- fell: the entry was evicted and made again): the latest counters alone.
        SELECT *, a1_reset IS NOT DISTINCT FROM a0_reset AND a1_calls >= a0_calls AND a1_total >= a0_total AS continued
          FROM per_role
    ), summed AS (
        SELECT index_name, queryid, min(query) AS query,
               sum(b_calls)::bigint AS calls_before, sum(b_total) AS total_before,
               sum(CASE WHEN continued THEN a1_calls - a0_calls ELSE a1_calls END)::bigint AS calls_after,
               sum(CASE WHEN continued THEN a1_total - a0_total ELSE a1_total END) AS total_after,
               -- Histograms of several roles do not add up here: a p95 only for one role.
               CASE WHEN count(*) = 1 THEN min(b_latency::text)::jsonb END AS b_latency,
               CASE WHEN count(*) = 1 THEN min(a1_latency::text)::jsonb END AS a1_latency,
               CASE WHEN count(*) = 1 AND bool_and(continued) THEN min(a0_latency::text)::jsonb END AS a0_latency
          FROM window_after GROUP BY index_name, queryid
    ), measured AS (
        SELECT index_name, queryid, query, calls_before,
               total_before / nullif(calls_before, 0) AS mean_ms_before,
               CASE WHEN b_latency IS NOT NULL THEN @extschema@.latency_quantile(b_latency, 0.95) END AS p95_ms_before,
               calls_after,
               total_after / nullif(calls_after, 0) AS mean_ms_after,
               CASE WHEN a1_latency IS NOT NULL THEN @extschema@.latency_quantile(a1_latency, 0.95, a0_latency) END AS p95_ms_after
          FROM summed
    )
    SELECT index_name, queryid, query, calls_before, mean_ms_before, p95_ms_before,
           calls_after, mean_ms_after, p95_ms_after,
           round((100 * (mean_ms_after / nullif(mean_ms_before, 0) - 1))::numeric, 1)::float8
      FROM measured
     ORDER BY queryid
$$;
COMMENT ON FUNCTION index_effect(regclass) IS
  'The statements an index was suggested for: calls, mean and p95 before and after it was built, from pitstop.query_snapshots';

-- One row per suggestion whose index was built: the statements' mean before and after
-- (weighted by their calls after), the index's scans, size and the writes it has had to
-- follow since, and a verdict with the DROP for an index that did not help: never scanned,
-- or its statements less than 10 % faster.
CREATE VIEW index_effects AS
WITH e AS (
    SELECT s.id, x.*
      FROM @extschema@.index_suggestions s
     CROSS JOIN LATERAL @extschema@.index_effect(s.index_oid::regclass) x
     WHERE s.index_oid IS NOT NULL
       AND s.dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
       AND EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indexrelid = s.index_oid AND i.indrelid = s.relid)
), summary AS (
    SELECT id,
           count(*) FILTER (WHERE calls_before > 0 AND calls_after > 0) AS statements_measured,
           sum(calls_after * mean_ms_before) FILTER (WHERE calls_before > 0 AND calls_after > 0)
             / nullif(sum(calls_after) FILTER (WHERE calls_before > 0 AND calls_after > 0), 0) AS mean_ms_before,
           sum(calls_after * mean_ms_after) FILTER (WHERE calls_before > 0 AND calls_after > 0)
             / nullif(sum(calls_after) FILTER (WHERE calls_before > 0 AND calls_after > 0), 0) AS mean_ms_after
      FROM e GROUP BY id
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
       coalesce(st.idx_scan, 0) AS index_scans,
       pg_catalog.pg_relation_size(s.index_oid) AS index_bytes,
       greatest(coalesce(t.n_tup_ins + t.n_tup_upd - t.n_tup_hot_upd + t.n_tup_del, 0) - s.table_writes_at_seen, 0)
         AS table_writes_since,
       CASE WHEN coalesce(m.statements_measured, 0) = 0
              THEN 'not measured yet: needs a snapshot before and two after it was built, with calls'
            WHEN coalesce(st.idx_scan, 0) = 0
              THEN 'did not help: never used'
            WHEN m.mean_ms_after <= 0.9 * m.mean_ms_before
              THEN 'helped: the statements it was meant for got faster'
            ELSE 'did not help: the statements it was meant for are not faster'
       END AS verdict,
       CASE WHEN m.statements_measured > 0 AND (coalesce(st.idx_scan, 0) = 0 OR m.mean_ms_after > 0.9 * m.mean_ms_before)
              THEN pg_catalog.format('DROP INDEX CONCURRENTLY %I.%I;', n.nspname, c.relname)
       END AS action
  FROM @extschema@.index_suggestions s
  -- Still the index that was built: an OID can be reused after a DROP.
  JOIN pg_catalog.pg_index i ON i.indexrelid = s.index_oid AND i.indrelid = s.relid
  JOIN pg_catalog.pg_class c ON c.oid = s.index_oid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN summary m ON m.id = s.id
  LEFT JOIN pg_catalog.pg_stat_all_indexes st ON st.indexrelid = s.index_oid
  LEFT JOIN pg_catalog.pg_stat_all_tables t ON t.relid = s.relid
 WHERE s.dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database());
COMMENT ON VIEW index_effects IS
  'Each index built on pitstop''s advice: its statements before and after, its scans, size and writes since, and whether it helped';

GRANT SELECT ON index_suggestions, index_effects TO pg_monitor;
GRANT EXECUTE ON FUNCTION index_effect(regclass) TO pg_monitor;
