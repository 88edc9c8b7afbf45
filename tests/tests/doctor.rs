//! `pitstop doctor` against real clusters, each check in both outcomes: a server with
//! everything in place passes; without pitstop and pg_stat_statements preloaded, without the
//! extension, at an older extension version, without compute_query_id, each fails with its
//! fix — and running the fix as printed makes it pass. A role without grants gets the exact
//! GRANTs for the relay, the monitor and maintenance, and passes once they are run. TLS on and
//! off, Redis up and down, an invalid configuration file, a refused connection.

use pitstop_tests::{free_port, pitstop_env, ClusterOptions, PgCluster, RedisServer};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One check's outcome: status, found, fix.
#[derive(Debug, Clone)]
struct Outcome {
    status: String,
    found: String,
    fix: Option<String>,
}

/// `pitstop doctor --json` with `args`; the exit code and the checks by name.
fn doctor(args: &[&str]) -> (i32, BTreeMap<String, Outcome>) {
    let mut all = vec!["doctor", "--json"];
    all.extend_from_slice(args);
    let (code, out, err) = pitstop_env(&all, &[("HOME", "/nonexistent")]);
    let json: Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {out}\nstderr: {err}"));
    let checks = json
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let outcome = Outcome {
                status: c["status"].as_str().unwrap().to_string(),
                found: c["found"].as_str().unwrap().to_string(),
                fix: c["fix"].as_str().map(str::to_string),
            };
            (c["check"].as_str().unwrap().to_string(), outcome)
        })
        .collect();
    (code, checks)
}

/// Asserts `name`'s status and returns it.
fn expect(checks: &BTreeMap<String, Outcome>, name: &str, status: &str) -> Outcome {
    let c = checks.get(name).unwrap_or_else(|| panic!("no check {name}: {checks:#?}"));
    assert_eq!(c.status, status, "{name}: {c:#?}");
    c.clone()
}

/// Runs the SQL statements of a fix as printed (the prose around them left out), one by one:
/// ALTER SYSTEM refuses to run inside a multi-statement string.
fn run_fix(client: &mut postgres::Client, fix: &str) {
    let statements: Vec<&str> = fix
        .split([';', '\n'])
        .map(str::trim)
        .filter(|s| ["ALTER ", "CREATE ", "GRANT ", "SELECT "].iter().any(|k| s.starts_with(k)))
        .collect();
    assert!(!statements.is_empty(), "no SQL in {fix:?}");
    for s in statements {
        client.batch_execute(s).unwrap_or_else(|e| panic!("{s}: {e}"));
    }
}

/// A file in a private directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> TempFile {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let dir =
            std::env::temp_dir().join(format!("pitstop-doctor-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
        TempFile(dir.join(name))
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0.parent().unwrap());
    }
}

#[test]
fn a_ready_server_passes_and_redis_down_fails() {
    let logged = ClusterOptions {
        settings: vec![("log_statement", "all".into()), ("log_line_prefix", "app=%a ".into())],
        ..Default::default()
    };
    let (cluster, _client) = PgCluster::with_pitstop(logged, "CREATE EXTENSION pg_stat_statements");
    let mut redis = RedisServer::start();
    let config = TempFile::new("pitstop.toml", &format!("[redis]\nurl = \"{}\"\n", redis.url()));
    let dsn = cluster.dsn();
    let args = ["--dsn", dsn.as_str(), "--config", config.path()];
    let (code, checks) = doctor(&args);
    assert_eq!(code, 0, "{checks:#?}");
    for name in [
        "config",
        "connection",
        "server_version",
        "shared_preload_libraries",
        "extension",
        "pg_stat_statements",
        "relay_privileges",
        "monitor_privileges",
        "maintenance_privileges",
        "redis",
    ] {
        expect(&checks, name, "ok");
    }
    assert!(expect(&checks, "redis", "ok").found.starts_with("PING answered by"));
    // Plaintext TCP is a warning, which does not fail the run.
    expect(&checks, "tls", "warning");
    // Doctor only reads.
    let log = cluster.log();
    let statements: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.starts_with("app=pitstop-cli ")
                && (l.contains(" execute ") || l.contains(" statement: "))
        })
        .collect();
    assert!(statements.len() >= 10, "{log}");
    for line in statements {
        let sql = line.split_once(": ").unwrap().1.split_once(": ").map_or("", |(_, sql)| sql);
        assert!(sql.starts_with("SELECT ") || sql.starts_with("WITH "), "{line}");
    }

    redis.kill();
    let (code, checks) = doctor(&args);
    assert_eq!(code, 1);
    let down = expect(&checks, "redis", "failed");
    assert!(down.found.starts_with("cannot reach Redis at"), "{down:?}");
    assert!(down.fix.unwrap().contains("redis.url"));
}

#[test]
fn missing_libraries_extension_and_query_ids_fail_and_their_fixes_work() {
    let cluster = PgCluster::start_with(ClusterOptions {
        preload: vec!["auto_explain"],
        settings: Vec::new(),
    });
    let dsn = cluster.dsn();
    let args = ["--dsn", dsn.as_str()];
    let (code, checks) = doctor(&args);
    assert_eq!(code, 1);
    let preload = expect(&checks, "shared_preload_libraries", "failed");
    let fix = "ALTER SYSTEM SET shared_preload_libraries = 'auto_explain', 'pg_stat_statements', 'pitstop'; then restart PostgreSQL (e.g. systemctl restart postgresql)";
    assert_eq!(preload.fix.as_deref(), Some(fix));
    assert_eq!(expect(&checks, "pg_stat_statements", "failed").fix.as_deref(), Some(fix));
    assert_eq!(
        expect(&checks, "extension", "failed").fix.as_deref(),
        Some("CREATE EXTENSION pitstop; (in database \"postgres\")")
    );
    expect(&checks, "relay_privileges", "skipped");

    let mut client = cluster.connect();
    run_fix(&mut client, &preload.fix.unwrap());
    client.batch_execute("SELECT pg_reload_conf()").unwrap();
    let (_, checks) = doctor(&args);
    assert!(expect(&checks, "shared_preload_libraries", "failed")
        .found
        .ends_with("a changed value waits for a restart)"));
    cluster.restart();
    let mut client = cluster.connect();
    let (_, checks) = doctor(&args);
    expect(&checks, "shared_preload_libraries", "ok");
    let pgss = expect(&checks, "pg_stat_statements", "failed");
    assert_eq!(pgss.fix.as_deref(), Some("CREATE EXTENSION pg_stat_statements;"));
    run_fix(&mut client, &pgss.fix.unwrap());

    // An older extension: the update it names.
    client.batch_execute("CREATE EXTENSION pitstop VERSION '0.1.0'").unwrap();
    let (_, checks) = doctor(&args);
    let old = expect(&checks, "extension", "failed");
    assert!(old.found.contains("this database has 0.1.0"), "{old:?}");
    assert_eq!(
        old.fix.as_deref(),
        Some(
            format!("ALTER EXTENSION pitstop UPDATE TO '{}';", env!("CARGO_PKG_VERSION")).as_str()
        )
    );
    run_fix(&mut client, &old.fix.unwrap());

    client.batch_execute("ALTER SYSTEM SET compute_query_id = off").unwrap();
    client.batch_execute("SELECT pg_reload_conf()").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (_, checks) = doctor(&args);
    let ids = expect(&checks, "pg_stat_statements", "failed");
    assert!(ids.found.starts_with("compute_query_id = off"), "{ids:?}");
    run_fix(&mut client, &ids.fix.unwrap());
    std::thread::sleep(std::time::Duration::from_millis(300));

    let (code, checks) = doctor(&args);
    assert_eq!(code, 0, "{checks:#?}");
    expect(&checks, "extension", "ok");
    assert!(expect(&checks, "pg_stat_statements", "ok").found.contains("query id"));
}

#[test]
fn a_role_without_grants_is_told_each_grant_and_passes_once_they_are_run() {
    // app owns a table; ops (a member of postgres) and admin (CREATEROLE) own one each: a
    // membership in those would let watcher become a superuser.
    let setup = "CREATE ROLE watcher LOGIN; CREATE ROLE app; CREATE TABLE public.orders (id int); ALTER TABLE public.orders OWNER TO app;
                 CREATE ROLE ops IN ROLE postgres; CREATE TABLE public.jobs (id int); ALTER TABLE public.jobs OWNER TO ops;
                 CREATE ROLE admin CREATEROLE; CREATE TABLE public.roles (id int); ALTER TABLE public.roles OWNER TO admin";
    let (cluster, mut client) = PgCluster::with_extension(setup);
    let config = TempFile::new("pitstop.toml", "[redis]\nurl = \"redis://127.0.0.1:1\"\n");
    let dsn = format!("host=127.0.0.1 port={} user=watcher dbname=postgres", cluster.port);
    let args = ["--dsn", dsn.as_str(), "--config", config.path()];
    let (code, checks) = doctor(&args);
    assert_eq!(code, 1);
    // A role that may not read shared_preload_libraries still learns that pitstop is loaded.
    let preload = expect(&checks, "shared_preload_libraries", "ok");
    assert_eq!(preload.found, "pitstop is preloaded (its settings are defined in this session; reading shared_preload_libraries needs pg_read_all_settings)");

    let relay = expect(&checks, "relay_privileges", "failed");
    assert_eq!(
        relay.fix.as_deref(),
        Some(
            "GRANT USAGE ON SCHEMA pitstop TO watcher;\nGRANT SELECT, DELETE ON pitstop.invalidation_outbox TO watcher;\n\
             GRANT SELECT, INSERT, UPDATE ON pitstop.relay_state TO watcher;"
        )
    );
    let monitor = expect(&checks, "monitor_privileges", "failed");
    let monitor_fix = monitor.fix.unwrap();
    assert!(
        monitor_fix.starts_with(
            "GRANT pg_monitor TO watcher;\nGRANT USAGE ON SCHEMA pitstop TO watcher;\n"
        ),
        "{monitor_fix}"
    );
    assert!(monitor.found.contains("the rights of pg_read_all_stats"), "{}", monitor.found);
    let maintenance = expect(&checks, "maintenance_privileges", "failed");
    let maintenance_fix = maintenance.fix.unwrap();
    assert!(maintenance.found.contains("public.orders (owner app)"), "{}", maintenance.found);
    // From PostgreSQL 17 on MAINTAIN on exactly those tables; before, membership in the
    // owners' roles, never in one that leads to a superuser's rights.
    let major: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int / 10000", &[])
        .unwrap()
        .get(0);
    if major >= 17 {
        assert!(
            maintenance_fix.contains("\nGRANT MAINTAIN ON TABLE public.orders, ")
                && maintenance_fix.contains("public.jobs"),
            "{maintenance_fix}"
        );
        assert!(!maintenance_fix.contains("pg_maintain"), "{maintenance_fix}");
    } else {
        assert!(maintenance_fix.contains("GRANT app TO watcher;\n"), "{maintenance_fix}");
        assert!(
            maintenance_fix
                .contains("tables of admin, ops, postgres, whose membership would give away more"),
            "{maintenance_fix}"
        );
    }
    for owner in ["postgres", "ops", "admin"] {
        assert!(!maintenance_fix.contains(&format!("GRANT {owner} ")), "{maintenance_fix}");
    }

    // The relay's and the monitor's GRANTs, run as printed, are all they need.
    run_fix(&mut client, &relay.fix.unwrap());
    let (_, checks) = doctor(&args);
    expect(&checks, "relay_privileges", "ok");
    let monitor = expect(&checks, "monitor_privileges", "failed");
    assert!(
        monitor.fix.as_deref().unwrap().starts_with(
            "GRANT pg_monitor TO watcher;\nGRANT SELECT, INSERT, DELETE ON pitstop.host_metrics"
        ),
        "{monitor:?}"
    );
    run_fix(&mut client, &monitor.fix.unwrap());
    let (_, checks) = doctor(&args);
    expect(&checks, "monitor_privileges", "ok");

    // Maintenance: its GRANTs run as printed. On 15 what is left are the tables of owners no
    // GRANT is offered for: a warning (the daemon logs them as skipped), no longer a failure.
    let m = expect(&checks, "maintenance_privileges", "failed");
    run_fix(&mut client, &m.fix.unwrap());
    if major < 17 {
        let (code, checks) = doctor(&args);
        let m = expect(&checks, "maintenance_privileges", "warning");
        assert!(
            !m.found.contains("public.orders")
                && m.found.contains("pitstop.host_metrics (owner postgres)"),
            "{m:?}"
        );
        for task in ["relay_privileges", "monitor_privileges"] {
            expect(&checks, task, "ok");
        }
        assert_eq!(code, 1, "redis and pg_stat_statements still fail");
        // What is left, the owners themselves may not be given: nothing else to run.
        client.batch_execute("ALTER TABLE public.jobs OWNER TO app; ALTER TABLE public.roles OWNER TO app; ALTER DATABASE postgres OWNER TO watcher").unwrap();
    }
    let (_, checks) = doctor(&args);
    expect(&checks, "maintenance_privileges", "ok");
    // Redis is not there (port 1), which is its own check.
    expect(&checks, "redis", "failed");
}

/// The README's block that creates the daemon's role and grants it what it runs, comments
/// left out.
fn readme_role_grants() -> String {
    let readme = pitstop_tests::markdown::repo_file("README.md");
    let start = readme.find("CREATE ROLE pitstop LOGIN;").expect("README: no CREATE ROLE pitstop");
    let block = &readme[start..start + readme[start..].find("```").unwrap()];
    block.lines().map(str::trim).filter(|l| !l.starts_with("--")).collect::<Vec<_>>().join("\n")
}

/// Review 9, LOW 7: before each snapshot the snapshot job calls index_suggestions_observe(),
/// whose UPDATE … FROM reads index_suggestions and query_snapshots. A role with what doctor
/// asked of the job (UPDATE on index_suggestions, INSERT on query_snapshots, the statistics
/// through pg_read_all_stats rather than pg_monitor) never noted a built index, and doctor
/// said ok; now doctor names both SELECTs, and once they are granted the index is noted. The
/// README's role, which may UPDATE only the columns observe writes, notes one too.
#[test]
fn the_snapshot_job_is_checked_for_what_observe_reads_and_runs_with_the_readmes_grants() {
    let setup = "CREATE EXTENSION pg_stat_statements;
        CREATE TABLE public.orders (id int PRIMARY KEY, customer_id int NOT NULL, total numeric NOT NULL);
        INSERT INTO public.orders SELECT g, g % 5000, g FROM generate_series(1, 200000) g;
        CREATE TABLE public.items (id int PRIMARY KEY, sku int NOT NULL, price numeric NOT NULL);
        INSERT INTO public.items SELECT g, g % 7000, g FROM generate_series(1, 200000) g;
        ANALYZE public.orders, public.items;
        SELECT pg_stat_statements_reset()";
    let (cluster, mut client) = PgCluster::with_extension(setup);
    for i in 0..30 {
        client
            .query_one("SELECT sum(total) FROM public.orders WHERE customer_id = $1", &[&(i * 7)])
            .unwrap();
        client
            .query_one("SELECT max(price) FROM public.items WHERE sku = $1", &[&(i * 11)])
            .unwrap();
    }
    let mut advised = BTreeMap::new();
    for row in client
        .query("SELECT DISTINCT ON (table_name) table_name, ddl FROM pitstop.suggest_indexes() ORDER BY table_name, rank", &[])
        .unwrap()
    {
        advised.insert(row.get::<_, String>(0), row.get::<_, String>(1));
    }
    let (orders, items) = (&advised["public.orders"], &advised["public.items"]);
    let noted = |client: &mut postgres::Client, ddl: &str| -> bool {
        client
            .query_one(
                "SELECT index_oid IS NOT NULL FROM pitstop.index_suggestions WHERE ddl = $1",
                &[&ddl],
            )
            .unwrap()
            .get(0)
    };
    let config = TempFile::new(
        "pitstop.toml",
        "[[maintenance.jobs]]\nname = \"snap\"\nkind = \"snapshot\"\nschedule = \"0 * * * *\"\n",
    );

    // What doctor asked of the snapshot job before.
    client
        .batch_execute(
            "CREATE ROLE snapper LOGIN; GRANT USAGE ON SCHEMA pitstop TO snapper; GRANT pg_read_all_stats TO snapper;
             GRANT SELECT, INSERT, UPDATE ON pitstop.maintenance_log TO snapper;
             GRANT USAGE ON SEQUENCE pitstop.maintenance_log_id_seq TO snapper;
             GRANT INSERT ON pitstop.query_snapshots TO snapper;
             GRANT UPDATE ON pitstop.index_suggestions TO snapper",
        )
        .unwrap();
    client.batch_execute(orders).unwrap();
    let snapper = format!("host=127.0.0.1 port={} user=snapper dbname=postgres", cluster.port);
    pitstop_tests::run_snapshot_job(&snapper);
    assert!(!noted(&mut client, orders), "observe ran without SELECT on what it reads");
    let (_, checks) = doctor(&["--dsn", &snapper, "--config", config.path()]);
    let m = expect(&checks, "maintenance_privileges", "failed");
    assert_eq!(
        m.found,
        "role \"snapper\" lacks:\nSELECT on pitstop.query_snapshots\nSELECT on pitstop.index_suggestions"
    );
    let fix = m.fix.unwrap();
    assert_eq!(
        fix,
        "GRANT SELECT ON pitstop.query_snapshots TO snapper;\nGRANT SELECT ON pitstop.index_suggestions TO snapper;"
    );
    run_fix(&mut client, &fix);
    let (_, checks) = doctor(&["--dsn", &snapper, "--config", config.path()]);
    expect(&checks, "maintenance_privileges", "ok");
    pitstop_tests::run_snapshot_job(&snapper);
    assert!(noted(&mut client, orders), "observe did not note {orders}");

    // The README's role: doctor passes it, and its snapshot job notes the next index built.
    client.batch_execute(&readme_role_grants()).unwrap();
    let readme_role = format!("host=127.0.0.1 port={} user=pitstop dbname=postgres", cluster.port);
    let (_, checks) = doctor(&["--dsn", &readme_role, "--config", config.path()]);
    expect(&checks, "maintenance_privileges", "ok");
    client.batch_execute(items).unwrap();
    pitstop_tests::run_snapshot_job(&readme_role);
    assert!(noted(&mut client, items), "the README's role did not note {items}");
    // It may write only the columns observe writes.
    let mut daemon = cluster.connect_as("pitstop", "postgres");
    let err = daemon.batch_execute("UPDATE pitstop.index_suggestions SET ddl = ddl").unwrap_err();
    assert_eq!(err.code(), Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE), "{err}");
}

/// Without connection flags doctor connects as the daemon would, with the configuration's
/// postgres.dsn, and checks that role; flags still win.
#[test]
fn without_flags_the_daemons_own_connection_is_checked() {
    let (cluster, _client) = PgCluster::with_extension("CREATE ROLE daemon_role LOGIN");
    let dsn = format!("host=127.0.0.1 port={} user=daemon_role dbname=postgres", cluster.port);
    let config = TempFile::new("pitstop.toml", &format!("[postgres]\ndsn = {dsn:?}\n"));
    let (_, checks) = doctor(&["--config", config.path()]);
    let connection = expect(&checks, "connection", "ok");
    assert!(connection.found.contains("as role \"daemon_role\""), "{connection:?}");
    expect(&checks, "monitor_privileges", "failed");
    let flags = format!("host=127.0.0.1 port={} user=postgres dbname=postgres", cluster.port);
    let (_, checks) = doctor(&["--dsn", &flags, "--config", config.path()]);
    assert!(
        expect(&checks, "connection", "ok").found.contains("as role \"postgres\""),
        "{checks:#?}"
    );
}

/// A CA and a server certificate it signed for 127.0.0.1, in `dir` (ca.pem, server.crt, server.key).
fn server_certificate(dir: &Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"];
    let steps: [Vec<&str>; 3] = [
        [
            &["req", "-x509"][..],
            &ec[..],
            &[
                "-subj",
                "/CN=doctor-ca",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ][..],
        ]
        .concat(),
        [
            &["req"][..],
            &ec[..5],
            &["-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr"][..],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ],
    ];
    std::fs::write(dir.join("san.ext"), "subjectAltName = IP:127.0.0.1\nbasicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\n").unwrap();
    for args in steps {
        let out = Command::new("openssl").args(&args).current_dir(dir).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(Command::new("chown")
        .arg("postgres")
        .arg(dir.join("server.key"))
        .status()
        .unwrap()
        .success());
}

#[test]
fn tls_is_ok_when_verified_and_a_warning_with_the_fix_otherwise() {
    let cluster = PgCluster::start_with(ClusterOptions::default());
    let plain = cluster.dsn();
    let (_, checks) = doctor(&["--dsn", &plain]);
    let off = expect(&checks, "tls", "warning");
    assert!(off.found.starts_with("plaintext TCP connection (server ssl = off"), "{off:?}");
    assert!(off
        .fix
        .unwrap()
        .starts_with("on the server: ssl_cert_file and ssl_key_file, ALTER SYSTEM SET ssl = on;"));

    let dir = cluster.data_dir();
    server_certificate(&dir);
    let mut client = cluster.connect();
    client.batch_execute("ALTER SYSTEM SET ssl = on").unwrap();
    client.batch_execute("SELECT pg_reload_conf()").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (_, checks) = doctor(&["--dsn", &format!("{plain} sslmode=disable")]);
    let refused = expect(&checks, "tls", "warning");
    assert!(refused.found.contains("server ssl = on, sslmode=disable"), "{refused:?}");
    assert!(refused.fix.unwrap().starts_with("connect with sslmode=verify-full sslrootcert="));
    let (_, checks) = doctor(&["--dsn", &format!("{plain} sslmode=require")]);
    assert!(expect(&checks, "tls", "warning")
        .found
        .starts_with("encrypted, but the server's certificate is not verified (TLSv1.3"));
    let ca = dir.join("ca.pem");
    let (_, checks) =
        doctor(&["--dsn", &format!("{plain} sslmode=verify-full sslrootcert={}", ca.display())]);
    let ok = expect(&checks, "tls", "ok");
    assert!(
        ok.found.starts_with("encrypted: TLSv1.3") && ok.found.contains("sslmode=verify-full"),
        "{ok:?}"
    );
}

#[test]
fn an_invalid_configuration_and_a_refused_connection_are_failed_checks() {
    let config = TempFile::new("pitstop.toml", "[relay]\nbatch_sise = 3\n");
    let port = free_port().to_string();
    let (code, checks) =
        doctor(&["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "--config", config.path()]);
    assert_eq!(code, 1);
    let bad = expect(&checks, "config", "failed");
    assert!(bad.found.contains("relay.batch_sise: unknown key"), "{bad:?}");
    let refused = expect(&checks, "connection", "failed");
    assert_eq!(refused.found, format!("connection to server at \"127.0.0.1\", port {port} failed: Connection refused (os error 111)"));
    assert!(refused.fix.unwrap().starts_with("Is the server running on that host"));
    for name in ["server_version", "extension", "relay_privileges"] {
        expect(&checks, name, "skipped");
    }
    expect(&checks, "redis", "skipped");

    // Usage errors are clap's: status 2.
    let (code, _, err) = pitstop_env(&["doctor", "--no-such-flag"], &[]);
    assert_eq!(code, 2, "{err}");
}
