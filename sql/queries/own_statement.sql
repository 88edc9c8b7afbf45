-- Whether a pg_stat_statements entry `s` is pitstop's own rather than the application's
-- workload (top_queries, suggest_indexes and unhelped_queries leave these out unless
-- include_self). pg_stat_statements keeps only the text, so the text is read, with what the
-- catalogs of this database say about the names in it. Comments are ignored (anyone can write
-- "pitstop" in one), and so are string literals and quoted identifiers, except one that reads
-- the same unquoted ("pitstop" is pitstop; "pitstop.total" is a column alias). The text
--   * names an object that exists in the schema pitstop, as pitstop.<name> (the CLI's and
--     the daemon's statements and direct calls all do), except pitstop.cached(…) and
--     pitstop.cached_json(…), the application's own workload going through the cache:
--     pitstop.driver, where pitstop is a table's alias, names nothing of pitstop's;
--   * is CREATE/ALTER/DROP EXTENSION pitstop, or the relay's LISTEN pitstop_invalidation
--     (the channel pitstop's triggers notify);
--   * reads or resets pg_stat_statements;
--   * or is a query (SELECT, WITH, VALUES) that qualifies a system catalog and touches nothing
--     else: every FROM, JOIN, INTO, UPDATE and TABLE names a pg_catalog or information_schema
--     relation or opens a subquery (whose own FROMs are held to the same rule; the FROM of
--     extract(… FROM …) and IS [NOT] DISTINCT FROM names nothing), no name after a comma
--     (after ONLY or LATERAL too; when qualified, in that schema) is a table, view or foreign
--     table of this database outside the catalogs and pitstop's schema, and every function it
--     calls has a name that some pg_catalog function has or none outside the catalogs and
--     pitstop's schema has (the CLI's version check, doctor and top, the daemon's monitor,
--     psql's \d). A statement that also reads a table, in a comma-separated FROM list, a join
--     or a subquery too, reads a CTE, or calls a function of the application's is the
--     application's (PostgREST writes pg_catalog.count(…) around every one), and so is DDL
--     however it qualifies its functions (pg_dump's and pg_restore's).
-- The names of pitstop's schema are read once per statement, and a text without pitstop,
-- pg_stat_statements or a catalog schema in it is not read further; one over 4 kB is no
-- catalog read.
(s.query ~* '(pitstop|pg_stat_statements|pg_catalog|information_schema)'
 AND (coalesce(pg_catalog.regexp_replace(pg_catalog.regexp_replace(pg_catalog.regexp_replace(s.query,
                 '/\*.*?\*/', ' ', 'g'), '--[^\n]*', ' ', 'g'),
                 '"([a-z_][a-z0-9_$]*)"|"(?:[^"]|"")*"|''(?:[^'']|'''')*''', '\1', 'g')
               ~* (SELECT '\mpitstop[[:space:]]*\.[[:space:]]*('
                          || pg_catalog.string_agg(pg_catalog.regexp_replace(o.name, '([^[:alnum:]_])', '\\\1', 'g'), '|')
                          || ')\M'
                     FROM (SELECT c.relname::text AS name FROM pg_catalog.pg_class c
                            WHERE c.relnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'pitstop')
                           UNION
                           SELECT p.proname::text FROM pg_catalog.pg_proc p
                            WHERE p.pronamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'pitstop')
                              AND p.proname NOT IN ('cached', 'cached_json')) AS o),
               false)
      OR EXISTS (
        SELECT 1
          -- Whitespace runs outside literals and quoted names are one character: no pattern
          -- below backtracks over a long run.
          FROM (SELECT pg_catalog.regexp_replace(pg_catalog.regexp_replace(pg_catalog.regexp_replace(s.query,
                         '/\*.*?\*/', ' ', 'g'), '--[^\n]*', ' ', 'g'),
                         '("(?:[^"]|"")*"|''(?:[^'']|'''')*'')|([[:space:]])[[:space:]]*', '\1\2', 'g') AS text) AS own_t
         -- Literals dropped and quoted names read with spaces around.
         CROSS JOIN LATERAL
               (SELECT pg_catalog.regexp_replace(own_t.text, '"([a-z_][a-z0-9_$]*)"|"(?:[^"]|"")*"|''(?:[^'']|'''')*''',
                                                 ' \1 ', 'g') AS plain) AS own_p
         WHERE own_p.plain ~* ('^[[:space:]]*(create|alter|drop)[[:space:]]+extension[[:space:]]+(if[[:space:]]+(not[[:space:]]+)?exists[[:space:]]+)?pitstop\M'
                               '|^[[:space:]]*listen[[:space:]]+pitstop_invalidation[[:space:]]*;?[[:space:]]*$'
                               '|\mpg_stat_statements')
            -- Past 4 kB a text is no catalog read (pitstop's own are under 2 kB): each pattern
            -- below is linear, but planted long texts would still cost tens of ms a row.
            OR (pg_catalog.octet_length(s.query) <= 4096
                AND own_p.plain ~* '^[[:space:]]*(\([[:space:]]*)*(select|with|values)\M'
                AND own_p.plain ~* '\m(pg_catalog|information_schema)[[:space:]]*\.'
                -- Read with literals dropped first, then the FROM of extract(… FROM …) and IS [NOT]
                -- DISTINCT FROM (not after a dot or a quote: o.is "distinct" FROM t reads t),
                -- then quoted names read.
                AND pg_catalog.regexp_replace(pg_catalog.regexp_replace(pg_catalog.regexp_replace(
                        pg_catalog.regexp_replace(own_t.text, '("(?:[^"]|"")*")|''(?:[^'']|'''')*''', ' \1 ', 'g'),
                        '[[:space:]]+', ' ', 'g'),
                      '(^|[^.[:alnum:]_$"])(is (not )?distinct from|extract ?\( ?[[:alnum:]_$]* ?from)\M', '\1 ', 'gi'),
                      '"([a-z_][a-z0-9_$]*)"|"(?:[^"]|"")*"', ' \1 ', 'g')
                    !~* '\m(from|join|into|update|table)\M(?![[:space:]]*((pg_catalog|information_schema)[[:space:]]*\.|\([[:space:]]*(select|values|with)\M))'
                -- A name after a comma (or its parentheses) that is a table (qualified: in that
                -- schema), and a function called by a name no catalog function has, or
                -- pitstop.cached(…) and cached_json(…), which run the application's query.
                AND NOT EXISTS (
                  SELECT 1
                    FROM pg_catalog.regexp_matches(own_t.text,
                           ',[[:space:]]*(?:\([[:space:]]*)*(?:(?:only|lateral)[[:space:]]+)?'
                           '(?:("(?:[^"]|"")+"|[[:alpha:]_][[:alnum:]_$]*)[[:space:]]*\.[[:space:]]*)?'
                           '(?:"((?:[^"]|"")+)"|([[:alpha:]_][[:alnum:]_$]*)\M)(?![[:space:]]*[(.])', 'gi') AS w(word)
                    JOIN pg_catalog.pg_class c
                      ON c.relname = coalesce(pg_catalog.replace(w.word[2], '""', '"'), pg_catalog.lower(w.word[3]))
                    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                   WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
                     AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pitstop')
                     AND (w.word[1] IS NULL
                          OR n.nspname = CASE WHEN w.word[1] ~ '^"'
                                              THEN pg_catalog.replace(pg_catalog.btrim(w.word[1], '"'), '""', '"')
                                              ELSE pg_catalog.lower(w.word[1]) END))
                AND NOT EXISTS (
                  SELECT 1
                    FROM pg_catalog.regexp_matches(own_t.text,
                           '(?:"((?:[^"]|"")+)"|([[:alpha:]_][[:alnum:]_$]*))[[:space:]]*\(', 'g') AS f(word)
                    JOIN pg_catalog.pg_proc p
                      ON p.proname = coalesce(pg_catalog.replace(f.word[1], '""', '"'), pg_catalog.lower(f.word[2]))
                   WHERE (p.pronamespace::pg_catalog.regnamespace::text NOT IN ('pg_catalog', 'information_schema', 'pitstop')
                          OR (p.pronamespace::pg_catalog.regnamespace::text = 'pitstop' AND p.proname IN ('cached', 'cached_json')))
                     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc q
                                      WHERE q.proname = p.proname AND q.pronamespace = 'pg_catalog'::pg_catalog.regnamespace))))))
