//! Upgrades: for every earlier release with a frozen install script (`sql/pitstop--V.sql`),
//! `CREATE EXTENSION pitstop VERSION 'V'` then `ALTER EXTENSION pitstop UPDATE` must give
//! exactly what a fresh `CREATE EXTENSION pitstop` gives — the pitstop schema as pg_dump
//! writes it, the extension's members, event triggers, functions, grants and comments — and
//! keep the history rows and the tracked tables of V. A schema change without its step in
//! `sql/pitstop--OLD--NEW.sql` fails here with the diff of the two databases.
//! Also: the CLI and the daemon say which ALTER EXTENSION to run against an older extension.

use pitstop_tests::query::first_two_columns;
use pitstop_tests::{pitstop, poll_until, Daemon, DaemonConfig, PgCluster};
use postgres::Client;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The release being built: the extension's default version.
const NEW: &str = env!("CARGO_PKG_VERSION");

/// Earlier releases: those with a frozen install script in `sql/`.
fn old_versions() -> Vec<String> {
    let sql = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sql");
    let mut versions: Vec<String> = std::fs::read_dir(&sql)
        .expect("read sql/")
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("pitstop--")?
                .strip_suffix(".sql")
                .map(str::to_string)
        })
        .filter(|v| !v.contains("--") && v != NEW)
        .collect();
    versions.sort();
    assert!(!versions.is_empty(), "no frozen install script in {}", sql.display());
    versions
}

fn connect(cluster: &PgCluster, db: &str) -> Client {
    cluster.connect_as("postgres", db)
}

fn dsn(cluster: &PgCluster, db: &str) -> String {
    format!("host=127.0.0.1 port={} user=postgres dbname={db}", cluster.port)
}

// ---- what the extension consists of ----------------------------------------------------

/// Catalog views of the extension that pg_dump leaves out or shows only in part, one text
/// line per object.
const CATALOG: &[(&str, &str)] = &[
    (
        "extension",
        "SELECT row(extversion, extrelocatable, extnamespace::regnamespace, extconfig::regclass[], extcondition)::text
         FROM pg_extension WHERE extname = 'pitstop'",
    ),
    (
        "members",
        "SELECT pg_describe_object(classid, objid, objsubid) FROM pg_depend
         WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
           AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pitstop')
         ORDER BY 1",
    ),
    (
        "event triggers",
        "SELECT row(evtname, evtevent, evtfoid::regprocedure, evtenabled, evttags, evtowner::regrole,
                    obj_description(oid, 'pg_event_trigger'))::text
         FROM pg_event_trigger ORDER BY evtname",
    ),
    (
        "functions",
        "SELECT row(p.oid::regprocedure, pg_get_function_arguments(p.oid), pg_get_function_result(p.oid),
                    prokind, provolatile, proparallel, prosecdef, proisstrict, proretset, proconfig,
                    prolang::regproc, probin, proacl, obj_description(p.oid, 'pg_proc'))::text
         FROM pg_proc p WHERE pronamespace = 'pitstop'::regnamespace ORDER BY 1",
    ),
    (
        "relations",
        "SELECT row(c.oid::regclass, relkind, relacl, relrowsecurity, relforcerowsecurity,
                    obj_description(c.oid, 'pg_class'))::text
         FROM pg_class c WHERE relnamespace = 'pitstop'::regnamespace ORDER BY 1",
    ),
    (
        "schema",
        "SELECT row(nspname, nspowner::regrole, nspacl, obj_description(oid, 'pg_namespace'))::text
         FROM pg_namespace WHERE nspname = 'pitstop'",
    ),
    (
        "initial privileges",
        "SELECT row(pg_describe_object(classoid, objoid, objsubid), initprivs)::text
         FROM pg_init_privs WHERE privtype = 'e' ORDER BY 1",
    ),
];

/// Everything the extension put into database `db`, as text: `pg_dump --schema-only
/// --binary-upgrade` of the pitstop schema (the only mode that dumps extension members) with
/// the OIDs, relfilenodes, frozen xids and WAL positions it records blanked, and the catalog
/// views above.
fn snapshot(cluster: &PgCluster, db: &str) -> String {
    let out = pitstop_tests::as_postgres("pg_dump")
        .args([
            "--schema-only",
            "--binary-upgrade",
            "--schema=pitstop",
            "--extension=pitstop",
            "--no-sync",
        ])
        .args(["-h", "127.0.0.1", "-p", &cluster.port.to_string(), "-U", "postgres", db])
        .output()
        .expect("run pg_dump");
    assert!(out.status.success(), "pg_dump {db}: {}", String::from_utf8_lossy(&out.stderr));
    let mut text = String::from("== pg_dump\n");
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        if let Some(line) = normalise_dump_line(line) {
            text.push_str(&line);
            text.push('\n');
        }
    }
    let mut client = connect(cluster, db);
    for (name, sql) in CATALOG {
        text.push_str(&format!("== {name}\n"));
        for row in client.query(*sql, &[]).unwrap_or_else(|e| panic!("{name}: {e}")) {
            text.push_str(row.get::<_, &str>(0));
            text.push('\n');
        }
    }
    text
}

/// A pg_dump line with what differs between two databases of the same schema blanked: the
/// binary-upgrade calls that carry OIDs, relfilenodes and WAL positions, frozen xids, the
/// config tables' OIDs (compared by name in the catalog part), sequence positions and the
/// \restrict key. None drops the line.
fn normalise_dump_line(line: &str) -> Option<String> {
    if line.starts_with("\\restrict ")
        || line.starts_with("\\unrestrict ")
        || line.starts_with("SELECT pg_catalog.binary_upgrade_set_next_")
    {
        return None;
    }
    if line.starts_with("SET relfrozenxid = ") {
        return Some("SET relfrozenxid = N, relminmxid = N".into());
    }
    if line.starts_with("WHERE oid = '") {
        return Some("WHERE oid = N;".into());
    }
    if let Some(rest) = line.strip_prefix("SELECT pg_catalog.setval(") {
        // Where a sequence stands is data (the rows written before the update), not schema.
        let name = rest.split(',').next().unwrap_or_default();
        return Some(format!("SELECT pg_catalog.setval({name}, N, B);"));
    }
    if line.starts_with("SELECT pg_catalog.binary_upgrade_create_empty_extension(") {
        // The array of config table OIDs: '{16390,16399}'.
        let start = line.find("'{").map(|i| i + 2)?;
        let end = start + line[start..].find('}')?;
        return Some(format!("{}oids{}", &line[..start], &line[end..]));
    }
    Some(line.to_string())
}

/// `diff -u` of two snapshots, for the failure message.
fn diff(label_a: &str, a: &str, label_b: &str, b: &str) -> String {
    let dir = std::env::temp_dir().join(format!("pitstop-upgrade-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (path_a, path_b) = (dir.join(label_a), dir.join(label_b));
    std::fs::write(&path_a, a).unwrap();
    std::fs::write(&path_b, b).unwrap();
    let out = Command::new("diff").arg("-u").arg(&path_a).arg(&path_b).output().expect("run diff");
    let _ = std::fs::remove_dir_all(&dir);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---- what a user of the old version has ------------------------------------------------

/// History rows, a tracked table with tags that need quoting, a tracked partitioned table,
/// an outbox row and a relay cursor, all written through the old version.
const OLD_DATA: &str = r#"
CREATE TABLE orders (id int, v text);
CREATE TABLE events (id int, at date) PARTITION BY RANGE (at);
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
SELECT pitstop.cache_track('orders', ARRAY['orders-list', 'back\slash', 'comma, "quoted"', 'naïve']);
SELECT pitstop.cache_track('events');
INSERT INTO orders VALUES (1, 'a');
INSERT INTO pitstop.relay_state (consumer, horizon, delivered) VALUES ('relay', '5', 7);
INSERT INTO pitstop.maintenance_log (run_id, job, action, target, command, started_at, duration_ms, outcome, detail)
    VALUES (1, 'nightly', 'run', NULL, NULL, '2025-06-01 03:00+00', 1200, 'ok', 'two actions'),
           (1, 'nightly', 'vacuum', 'public.orders', 'VACUUM public.orders', '2025-06-01 03:00:01+00', 800, 'skipped', 'not owner');
INSERT INTO pitstop.alerts (rule, metric, labels, severity, state, value, threshold, summary, started_at, fired_at)
    VALUES ('cpu', 'pitstop_host_cpu_usage_ratio', '{"host": "db1"}', 'warning', 'firing', 0.95, 0.9, 'CPU busy', '2025-06-01 02:00+00', '2025-06-01 02:05+00');
INSERT INTO pitstop.host_metrics (sampled_at, host, metric, labels, value)
    VALUES ('2025-06-01 02:00+00', 'db1', 'pitstop_host_cpu_usage_ratio', '{}', 0.95),
           ('2025-06-01 02:00+00', 'db1', 'pitstop_postgres_connections', '{"state": "idle"}', 12);
INSERT INTO pitstop.query_snapshots VALUES ('2025-06-01 02:00+00', 1, 10, 42, 'SELECT 1', 3, 1.5, 0.5, 3, 10, 0, 0);
"#;

/// Remembered suggestions, a btree and a BRIN (on a table whose name says "USING brin"), for
/// releases that have index_suggestions (0.3.0 on).
const OLD_SUGGESTION: &str = r#"
CREATE TABLE "orders USING brin (id)" (id int);
INSERT INTO pitstop.index_suggestions (dbid, relid, table_name, key_attnums, include_attnums, partial, ddl,
                                       queryids, improvement_pct, first_suggested_at, last_suggested_at)
SELECT d.oid, t.relid, t.name, '{1}', '{}', false, t.ddl, '{42}', 50, '2025-06-01 02:00+00', '2025-06-01 02:00+00'
  FROM pg_database d,
       (VALUES ('orders'::regclass, 'public.orders', 'CREATE INDEX CONCURRENTLY ON public.orders (id)'),
               ('orders'::regclass, 'public.orders', 'CREATE INDEX CONCURRENTLY ON public.orders USING brin (id)'),
               ('"orders USING brin (id)"'::regclass, 'public."orders USING brin (id)"',
                'CREATE INDEX CONCURRENTLY ON public."orders USING brin (id)" (id)')) AS t(relid, name, ddl)
 WHERE d.datname = current_database()"#;

/// What 0.4.0 and later write for the BRIN of OLD_SUGGESTION (0.3.0 has no column: the update
/// derives it from the DDL).
const OLD_BRIN_RECORDED: &str = "DO $$ BEGIN
    IF EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'pitstop.index_suggestions'::regclass
                                          AND attname = 'access_method') THEN
        EXECUTE $u$UPDATE pitstop.index_suggestions SET access_method = 'brin'
                    WHERE ddl = 'CREATE INDEX CONCURRENTLY ON public.orders USING brin (id)'$u$;
    END IF;
END $$";

fn has_suggestions(client: &mut Client) -> bool {
    client
        .query_one("SELECT to_regclass('pitstop.index_suggestions') IS NOT NULL", &[])
        .unwrap()
        .get(0)
}

/// Every row of the tables whose contents an upgrade must keep, as JSON text.
fn kept_rows(client: &mut Client) -> Vec<String> {
    let tables = [
        "maintenance_log",
        "alerts",
        "host_metrics",
        "query_snapshots",
        "invalidation_outbox",
        "relay_state",
    ];
    let mut rows = Vec::new();
    for table in tables {
        // NULLs left out: a column an update adds reads NULL in the kept rows.
        let sql = format!("SELECT '{table} ' || jsonb_strip_nulls(to_jsonb(t))::text FROM pitstop.{table} t ORDER BY 1");
        rows.extend(client.query(&sql, &[]).unwrap().iter().map(|r| r.get::<_, String>(0)));
    }
    if has_suggestions(client) {
        // access_method is new in 0.4.0 with a default (checked after the update).
        let sql = "SELECT 'index_suggestions ' || (jsonb_strip_nulls(to_jsonb(t)) - 'access_method')::text
                     FROM pitstop.index_suggestions t ORDER BY 1";
        rows.extend(client.query(sql, &[]).unwrap().iter().map(|r| r.get::<_, String>(0)));
    }
    rows
}

/// The outbox rows after `after_id`, as (relation, tags).
fn outbox_after(client: &mut Client, after_id: i64) -> Vec<(String, Vec<String>)> {
    let sql = "SELECT relation, tags FROM pitstop.invalidation_outbox WHERE id > $1 ORDER BY id";
    first_two_columns(client, sql, &[&after_id])
}

fn last_outbox_id(client: &mut Client) -> i64 {
    client
        .query_one("SELECT coalesce(max(id), 0) FROM pitstop.invalidation_outbox", &[])
        .unwrap()
        .get(0)
}

fn row(relation: &str, tags: &[&str]) -> (String, Vec<String>) {
    (relation.to_string(), tags.iter().map(|t| t.to_string()).collect())
}

// ---- the tests -------------------------------------------------------------------------

/// ALTER EXTENSION pitstop UPDATE from each earlier release gives a fresh install's objects,
/// keeps the history rows, and keeps every tracked table tracked, with its tags, through the
/// new registry (partitions included).
#[test]
fn updating_an_old_version_equals_a_fresh_install_and_keeps_data_and_tracking() {
    let cluster = PgCluster::start();
    let mut admin = cluster.connect();
    admin.batch_execute("CREATE DATABASE fresh").unwrap();
    connect(&cluster, "fresh").batch_execute("CREATE EXTENSION pitstop").unwrap();
    let installed: String = connect(&cluster, "fresh")
        .query_one("SELECT extversion FROM pg_extension WHERE extname = 'pitstop'", &[])
        .unwrap()
        .get(0);
    assert_eq!(installed, NEW, "CREATE EXTENSION pitstop does not install this release");
    let fresh = snapshot(&cluster, "fresh");

    for old in old_versions() {
        let db = format!("from_{}", old.replace('.', "_"));
        admin.batch_execute(&format!("CREATE DATABASE {db}")).unwrap();
        let mut c = connect(&cluster, &db);
        c.batch_execute(&format!("CREATE EXTENSION pitstop VERSION '{old}'")).unwrap();
        c.batch_execute(OLD_DATA)
            .unwrap_or_else(|e| panic!("{old}: writing through the old version: {e}"));
        let suggestions = has_suggestions(&mut c);
        if suggestions {
            c.batch_execute(OLD_SUGGESTION).unwrap();
            // From 0.4.0 on, suggest_indexes records the BRIN's access method itself.
            c.batch_execute(OLD_BRIN_RECORDED).unwrap();
        }
        let before = kept_rows(&mut c);

        c.batch_execute("ALTER EXTENSION pitstop UPDATE")
            .unwrap_or_else(|e| panic!("ALTER EXTENSION pitstop UPDATE from {old}: {e}"));
        let version: String = c
            .query_one("SELECT extversion FROM pg_extension WHERE extname = 'pitstop'", &[])
            .unwrap()
            .get(0);
        assert_eq!(version, NEW, "ALTER EXTENSION pitstop UPDATE from {old} stopped at {version}");

        let upgraded = snapshot(&cluster, &db);
        assert!(
            upgraded == fresh,
            "{old} updated to {NEW} differs from a fresh {NEW} (- fresh, + updated); add the missing step to sql/pitstop--{old}--{NEW}.sql:\n{}",
            diff("fresh", &fresh, &format!("from-{old}"), &upgraded)
        );

        assert_eq!(kept_rows(&mut c), before, "{old}: rows changed by the update");
        check_tracking_after_update(&mut c, &db);
        // What is new works on the kept rows: an action stopped by Ctrl-C is logged 'cancelled'.
        c.batch_execute(
            "INSERT INTO pitstop.maintenance_log (run_id, job, action, started_at, outcome) VALUES (2, 'cli', 'vacuum', now(), 'cancelled')",
        )
        .unwrap();
        if suggestions {
            check_suggestion_after_update(&mut c, &old);
        }
    }
}

/// The suggestions remembered by the old version have their access method, and the index
/// built for each is found.
fn check_suggestion_after_update(c: &mut Client, old: &str) {
    let remembered =
        "SELECT ddl, access_method || ' ' || coalesce(index_name, '-') FROM pitstop.index_suggestions ORDER BY ddl COLLATE \"C\"";
    let rows: Vec<(String, String)> = first_two_columns(c, remembered, &[]);
    let expected = |built: [&str; 3]| {
        vec![
            (
                "CREATE INDEX CONCURRENTLY ON public.\"orders USING brin (id)\" (id)".to_string(),
                format!("btree {}", built[0]),
            ),
            (
                "CREATE INDEX CONCURRENTLY ON public.orders (id)".to_string(),
                format!("btree {}", built[1]),
            ),
            (
                "CREATE INDEX CONCURRENTLY ON public.orders USING brin (id)".to_string(),
                format!("brin {}", built[2]),
            ),
        ]
    };
    assert_eq!(rows, expected(["-", "-", "-"]), "{old}: remembered before the update");
    c.batch_execute(
        r#"CREATE INDEX orders_id ON orders (id);
           CREATE INDEX orders_id_brin ON orders USING brin (id);
           CREATE INDEX other_id ON "orders USING brin (id)" (id);"#,
    )
    .unwrap();
    let marked: i32 =
        c.query_one("SELECT pitstop.index_suggestions_observe()", &[]).unwrap().get(0);
    assert_eq!(marked, 3, "{old}");
    let rows: Vec<(String, String)> = first_two_columns(c, remembered, &[]);
    assert_eq!(
        rows,
        expected(["public.other_id", "public.orders_id", "public.orders_id_brin"]),
        "{old}: followed after the update"
    );
}

/// The tables tracked before the update (in database `db`): registered with their tags, the
/// triggers replaced by argument-less ones (partitions included), writes and ALTER TABLE
/// relayed.
fn check_tracking_after_update(c: &mut Client, db: &str) {
    let orders = row(
        "public.orders",
        &[
            &format!("{db}.public.orders"),
            "orders-list",
            "back\\slash",
            "comma, \"quoted\"",
            "naïve",
        ],
    );
    let events = row("public.events", &[&format!("{db}.public.events")]);
    let tracked: Vec<(String, Vec<String>)> = first_two_columns(c, "SELECT format('%s.%s', relnamespace::regnamespace, relname), tags FROM pitstop.cache_tracked JOIN pg_class ON oid = relation ORDER BY 1", &[]);
    assert_eq!(tracked, [events.clone(), orders.clone()], "{db}: tracked tables after the update");

    let triggers: Vec<(String, i16)> = first_two_columns(c, "SELECT tgrelid::regclass::text, tgnargs FROM pg_trigger WHERE tgname = 'pitstop_invalidation' ORDER BY 1", &[]);
    let expected: Vec<(String, i16)> =
        ["events", "events_2025", "orders"].iter().map(|t| (t.to_string(), 0)).collect();
    assert_eq!(triggers, expected, "{db}: outbox triggers after the update");

    let start = last_outbox_id(c);
    c.batch_execute(
        "INSERT INTO orders VALUES (2, 'b');
         INSERT INTO events VALUES (1, '2025-03-01');
         INSERT INTO events_2025 VALUES (2, '2025-04-01');
         ALTER TABLE orders ADD COLUMN w int;",
    )
    .unwrap();
    assert_eq!(
        outbox_after(c, start),
        [orders.clone(), events.clone(), events, orders],
        "{db}: invalidations after the update (insert, insert through the parent, into the partition, ALTER TABLE)"
    );
}

/// Against an older extension the CLI refuses with the ALTER EXTENSION to run and the
/// daemon's status says it; after the update both are content.
#[test]
fn cli_and_daemon_name_the_alter_extension_for_an_older_extension() {
    let cluster = PgCluster::start();
    let old = old_versions().pop().unwrap();
    cluster.connect().batch_execute(&format!("CREATE EXTENSION pitstop VERSION '{old}'")).unwrap();
    let dsn = dsn(&cluster, "postgres");
    let expected = format!("pitstop {NEW} needs extension version {NEW}, this database has {old}: run ALTER EXTENSION pitstop UPDATE");

    let (code, out, err) = pitstop(&["--dsn", &dsn, "report", "locks"]);
    assert_eq!(code, 1, "report against {old}: {out}\n{err}");
    assert!(err.contains(&expected), "report against {old}: {err}");
    let (code, out, err) = pitstop(&["--dsn", &dsn, "maintenance", "--dry-run"]);
    assert_eq!(code, 1, "maintenance against {old}: {out}\n{err}");
    assert!(err.contains(&expected), "maintenance against {old}: {err}");

    let config = DaemonConfig::new(&dsn, "").set("postgres", "probe_interval = \"1s\"");
    let daemon = Daemon::start(&config.toml(), &[]);
    let detail = || {
        daemon.status()["components"]["postgres"]["detail"].as_str().unwrap_or_default().to_string()
    };
    let told = poll_until(Duration::from_secs(20), || detail().contains(&expected));
    assert!(told, "daemon status against {old}: {}\n{}", daemon.status(), daemon.log());

    cluster.connect().batch_execute("ALTER EXTENSION pitstop UPDATE").unwrap();
    let (code, out, err) = pitstop(&["--dsn", &dsn, "report", "locks"]);
    assert_eq!(code, 0, "report after the update: {out}\n{err}");
    let (code, out, err) = pitstop(&["--dsn", &dsn, "maintenance", "--dry-run"]);
    assert_eq!(code, 0, "maintenance after the update: {out}\n{err}");
    let content = poll_until(Duration::from_secs(20), || {
        detail() == format!("connected; extension pitstop {NEW}")
    });
    assert!(content, "daemon status after the update: {}\n{}", daemon.status(), daemon.log());
}
