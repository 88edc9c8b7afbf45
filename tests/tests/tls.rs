//! TLS to PostgreSQL from the CLI and the daemon, against a cluster with `ssl = on` and a
//! test CA made with openssl: each sslmode behaves as libpq's, what the server saw (its
//! `log_connections` line, pg_stat_ssl) says whether the session was encrypted; a wrong CA
//! fails naming the certificate problem; `prefer` falls back only when the server refuses
//! TLS. Also PGOPTIONS, the .pgpass permission check and the report statement timeouts.

use pitstop_tests::{
    pitstop_bin, pitstop_env, poll_until, ClusterOptions, Daemon, DaemonConfig, PgCluster,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA (`name.pem`) in `dir`, and with `server`, a server certificate it signed for
/// localhost and 127.0.0.1 (`server.crt`, `server.key`).
fn make_ca(dir: &Path, name: &str) {
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        dir,
    );
}

/// A key and a certificate for subject `cn` signed by `ca` (`name.key`, `name.crt`), with the
/// X.509 extensions `extensions` (written to `name.ext`).
fn make_signed_cert(dir: &Path, ca: &str, name: &str, cn: &str, extensions: &str) {
    let (key, csr, ext, crt) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.ext"),
        format!("{name}.crt"),
    );
    openssl(
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            &key,
            "-out",
            &csr,
        ],
        dir,
    );
    std::fs::write(dir.join(&ext), extensions).unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &crt,
        ],
        dir,
    );
}

/// A client certificate for role `user` signed by `ca` (`user.crt`, `user.key`).
fn make_client_cert(dir: &Path, ca: &str, user: &str) {
    make_signed_cert(
        dir,
        ca,
        user,
        user,
        "basicConstraints = CA:FALSE\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = clientAuth\n",
    );
}

/// A server certificate for localhost and 127.0.0.1 signed by `ca` (`server.crt`, `server.key`).
fn make_server_cert(dir: &Path, ca: &str) {
    make_signed_cert(
        dir,
        ca,
        "server",
        "localhost",
        "subjectAltName = DNS:localhost, IP:127.0.0.1\nbasicConstraints = CA:FALSE\n\
         keyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth\n",
    );
}

/// A cluster with `ssl = on` (server.crt/server.key in its data directory, signed by
/// `test-ca.pem`, which is there too, beside an unrelated `other-ca.pem`), logging every
/// connection. pg_hba: `tlsonly` only over TLS, `certuser` only with a client certificate
/// signed by the test CA, `postgres` either way.
struct TlsCluster {
    cluster: PgCluster,
    dir: PathBuf,
}

impl TlsCluster {
    fn start() -> TlsCluster {
        let cluster = PgCluster::start_with(ClusterOptions {
            settings: vec![("log_connections", "on".into())],
            ..Default::default()
        });
        let dir = cluster.data_dir();
        make_ca(&dir, "test-ca");
        make_ca(&dir, "other-ca");
        make_server_cert(&dir, "test-ca");
        std::fs::write(
            dir.join("pg_hba.conf"),
            "local all all trust\nhostssl all certuser 127.0.0.1/32 cert\nhostssl all all 127.0.0.1/32 trust\n\
             hostnossl all postgres 127.0.0.1/32 trust\n",
        )
        .unwrap();
        let status = Command::new("chown")
            .arg("postgres")
            .arg(dir.join("server.key"))
            .arg(dir.join("pg_hba.conf"))
            .status()
            .unwrap();
        assert!(status.success());
        let mut c = cluster.connect();
        c.batch_execute("CREATE EXTENSION pitstop; CREATE ROLE tlsonly LOGIN SUPERUSER; CREATE ROLE certuser LOGIN SUPERUSER").unwrap();
        c.batch_execute("ALTER SYSTEM SET ssl_ca_file = 'test-ca.pem'").unwrap();
        c.batch_execute("ALTER SYSTEM SET ssl = on").unwrap();
        c.batch_execute("SELECT pg_reload_conf()").unwrap();
        assert!(
            poll_until(Duration::from_secs(10), || cluster
                .connect()
                .query_one("SHOW ssl", &[])
                .unwrap()
                .get::<_, String>(0)
                == "on"),
            "ssl did not come on:\n{}",
            cluster.log()
        );
        TlsCluster { cluster, dir }
    }

    fn ca(&self, name: &str) -> String {
        self.dir.join(format!("{name}.pem")).display().to_string()
    }

    fn dsn(&self, extra: &str) -> String {
        format!("host=127.0.0.1 port={} user=postgres dbname=postgres {extra}", self.cluster.port)
    }

    /// The server's "connection authorized" line for application `app`.
    fn authorized(&self, app: &str) -> String {
        let needle = format!("application_name={app}");
        let log = self.cluster.log();
        log.lines()
            .find(|l| l.contains("connection authorized") && l.contains(&needle))
            .unwrap_or_else(|| panic!("no connection of {app}:\n{log}"))
            .to_string()
    }
}

/// `pitstop report connections --json --dsn <dsn>` as application `app`, with `env`.
fn report(dsn: &str, app: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut env = env.to_vec();
    env.push(("PGAPPNAME", app));
    env.push(("HOME", "/nonexistent"));
    pitstop_env(&["report", "connections", "--json", "--dsn", dsn], &env)
}

#[test]
fn sslmodes_behave_as_libpqs_against_a_tls_server() {
    let server = TlsCluster::start();
    let ca = server.ca("test-ca");

    for (mode, app) in [
        ("sslmode=require".to_string(), "case-require"),
        (format!("sslmode=verify-full sslrootcert={ca}"), "case-verify-full"),
        (format!("sslmode=verify-ca sslrootcert={ca}"), "case-verify-ca"),
        (String::new(), "case-default-prefer"),
    ] {
        let (code, out, err) = report(&server.dsn(&mode), app, &[]);
        assert_eq!(code, 0, "{mode}: {out}{err}");
        let line = server.authorized(app);
        assert!(line.contains("SSL enabled"), "{mode}: not encrypted: {line}");
    }

    // The libpq environment works the same way, and -h/-p/-U/-d override the DSN.
    let port = server.cluster.port.to_string();
    let env = [
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", ca.as_str()),
        ("PGAPPNAME", "case-env"),
        ("HOME", "/nonexistent"),
    ];
    let (code, out, err) = pitstop_env(
        &[
            "report",
            "connections",
            "--json",
            "--dsn",
            "host=nowhere.invalid port=1",
            "-h",
            "localhost",
            "-p",
            &port,
            "-U",
            "tlsonly",
            "-d",
            "postgres",
        ],
        &env,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(server.authorized("case-env").contains("user=tlsonly"));
    assert!(server.authorized("case-env").contains("SSL enabled"));

    // disable is plaintext: refused where only TLS is allowed, unencrypted where both are.
    let (code, _, err) = report(
        &format!("{} sslmode=disable", server.dsn("").replace("user=postgres", "user=tlsonly")),
        "case-disable-tlsonly",
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("no encryption"), "{err}");
    let (code, out, err) = report(&server.dsn("sslmode=disable"), "case-disable", &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        !server.authorized("case-disable").contains("SSL"),
        "{}",
        server.authorized("case-disable")
    );

    // A wrong CA: a clear error naming the certificate problem, for verify-* and for
    // require given a root certificate (then libpq verifies the chain too).
    let other = server.ca("other-ca");
    for mode in ["verify-full", "verify-ca", "require"] {
        let (code, out, err) = report(
            &server.dsn(&format!("sslmode={mode} sslrootcert={other}")),
            "case-wrong-ca",
            &[],
        );
        assert_eq!(code, 1, "{mode}: {out}");
        assert!(
            err.contains("invalid peer certificate") && err.contains("UnknownIssuer"),
            "{mode}: {err}"
        );
        assert!(err.contains(&other), "{mode}: the error should say which roots: {err}");
    }

    // verify-full checks the host name, verify-ca does not (hostaddr: where, host: the name).
    let misnamed = format!(
        "host=db.example port={} hostaddr=127.0.0.1 user=postgres dbname=postgres",
        server.cluster.port
    );
    let (code, _, err) = report(
        &format!("{misnamed} sslmode=verify-full sslrootcert={ca}"),
        "case-misnamed-full",
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("certificate not valid for name \"db.example\""), "{err}");
    let (code, out, err) =
        report(&format!("{misnamed} sslmode=verify-ca sslrootcert={ca}"), "case-misnamed-ca", &[]);
    assert_eq!(code, 0, "{out}{err}");

    // verify-full without any root certificate is refused before connecting.
    let (code, _, err) = report(&server.dsn("sslmode=verify-full"), "case-no-root", &[]);
    assert_eq!(code, 1);
    assert!(err.contains("needs a root certificate"), "{err}");
}

#[test]
fn a_client_certificate_authenticates_and_a_readable_key_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let server = TlsCluster::start();
    make_client_cert(&server.dir, "test-ca", "certuser");
    let (cert, key) = (server.dir.join("certuser.crt"), server.dir.join("certuser.key"));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let dsn = server
        .dsn(&format!("user=certuser sslmode=verify-full sslrootcert={}", server.ca("test-ca")));
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());

    let (code, out, err) = report(&dsn, "case-cert", &[("PGSSLCERT", cert), ("PGSSLKEY", key)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        server.authorized("case-cert").contains("user=certuser"),
        "{}",
        server.authorized("case-cert")
    );
    let (code, _, err) = report(&dsn, "case-no-cert", &[]);
    assert_eq!(code, 1);
    assert!(err.contains("certificate"), "{err}");
    // libpq refuses a private key others may read; so does pitstop (we run as root: 0640 at most).
    std::fs::set_permissions(
        server.dir.join("certuser.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let (code, _, err) =
        report(&format!("{dsn} sslcert={cert} sslkey={key}"), "case-open-key", &[]);
    assert_eq!(code, 1);
    assert!(err.contains("has group or world access"), "{err}");
}

#[test]
fn ctrl_c_cancels_a_maintenance_statement_over_tls() {
    let server = TlsCluster::start();
    let mut c = server.cluster.connect();
    c.batch_execute(
        "CREATE TABLE waits (id int PRIMARY KEY, pad text) WITH (autovacuum_enabled = false);
         INSERT INTO waits SELECT g, repeat('x', 50) FROM generate_series(1, 4000) g;
         DELETE FROM waits WHERE id % 4 <> 0;
         SELECT pg_stat_force_next_flush();",
    )
    .unwrap();
    assert!(poll_until(Duration::from_secs(10), || {
        c.batch_execute("SELECT pg_stat_clear_snapshot()").unwrap();
        c.query_one("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'waits'", &[])
            .unwrap()
            .get::<_, i64>(0)
            >= 2700
    }));
    // The VACUUM waits for this lock until it is cancelled.
    let mut holder = server.cluster.connect();
    holder.batch_execute("BEGIN; LOCK TABLE waits IN SHARE MODE").unwrap();
    let config = server.dir.join("maintenance.toml");
    std::fs::write(&config, "[maintenance]\nlock_timeout = \"5min\"\n").unwrap();
    let dsn = server.dsn("sslmode=require user=tlsonly");
    let mut child = Command::new(pitstop_bin())
        .args(["--dsn", &dsn, "maintenance", "--yes", "--config", config.to_str().unwrap()])
        .env("HOME", "/nonexistent")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut waiting = || -> i64 {
        c.query_one(
            "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
              WHERE a.application_name = 'pitstop-cli' AND a.query LIKE 'VACUUM%waits' AND a.state = 'active' AND s.ssl",
            &[],
        )
        .unwrap()
        .get(0)
    };
    assert!(
        poll_until(Duration::from_secs(20), || waiting() == 1),
        "the VACUUM never started over TLS"
    );
    assert!(Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let exited = poll_until(Duration::from_secs(20), || child.try_wait().ok().flatten().is_some());
    if !exited {
        let _ = child.kill();
    }
    let output = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{err}");
    assert_eq!(waiting(), 0, "the statement was cancelled on the server: {err}");
    assert!(err.contains("cancelled after"), "{err}");
    holder.batch_execute("COMMIT").unwrap();
}

#[test]
fn prefer_falls_back_to_plaintext_only_when_the_server_refuses_tls() {
    let options =
        ClusterOptions { settings: vec![("log_connections", "on".into())], ..Default::default() };
    let (plain, _) = PgCluster::with_pitstop(options, "");
    let dsn = plain.dsn();
    let (code, out, err) = report(&format!("{dsn} sslmode=prefer"), "case-prefer-plain", &[]);
    assert_eq!(code, 0, "{out}{err}");
    let log = plain.log();
    let line = log
        .lines()
        .find(|l| l.contains("application_name=case-prefer-plain") && l.contains("authorized"))
        .unwrap();
    assert!(!line.contains("SSL"), "{line}");
    let (code, _, err) = report(&format!("{dsn} sslmode=require"), "case-require-plain", &[]);
    assert_eq!(code, 1);
    assert!(err.contains("server does not support TLS") || err.contains("TLS"), "{err}");
}

#[test]
fn the_daemon_connects_with_verify_full() {
    let server = TlsCluster::start();
    let dsn = server.dsn(&format!("sslmode=verify-full sslrootcert={}", server.ca("test-ca")));
    let daemon = Daemon::start(&DaemonConfig::new(&dsn, "").toml(), &[("HOME", "/nonexistent")]);
    assert!(daemon.wait_for_log("connected with TLS", Duration::from_secs(20)), "{}", daemon.log());
    assert!(
        daemon.log().contains("sslmode=verify-full (certificate chain and host name verified"),
        "{}",
        daemon.log()
    );
    let mut c = server.cluster.connect();
    let encrypted = poll_until(Duration::from_secs(10), || {
        let row = c
            .query_one(
                "SELECT count(*), coalesce(bool_and(s.ssl), false) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
                  WHERE a.application_name = 'pitstop'",
                &[],
            )
            .unwrap();
        row.get::<_, i64>(0) > 0 && row.get::<_, bool>(1)
    });
    assert!(encrypted, "the daemon's session is not encrypted:\n{}", daemon.log());

    // check-config says what TLS the daemon would use.
    let (code, out, _) =
        pitstop_env(&["check-config", "--config", daemon.config_path.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("# postgres TLS: sslmode=verify-full"), "{out}");
}

#[test]
fn pgoptions_reach_the_session_and_a_readable_pgpass_is_ignored() {
    let (cluster, _) = PgCluster::with_extension("");
    let dsn = cluster.dsn();
    let (code, out, err) = report(&dsn, "case-pgoptions", &[("PGOPTIONS", "-c log_statement=all")]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        cluster.log().contains(
            ": SELECT pg_catalog.row_to_json(r)::text FROM (SELECT * FROM pitstop.connections) r"
        ),
        "{}",
        cluster.log()
    );

    use std::os::unix::fs::PermissionsExt;
    let pgpass = cluster.data_dir().with_file_name("pgpass");
    std::fs::write(&pgpass, "*:*:*:*:secret\n").unwrap();
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o644)).unwrap();
    let passfile = pgpass.to_str().unwrap();
    let (code, out, err) = report(&dsn, "case-pgpass", &[("PGPASSFILE", passfile)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("WARNING: password file") && err.contains("group or world access"),
        "{err}"
    );
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, _, err) = report(&dsn, "case-pgpass-private", &[("PGPASSFILE", passfile)]);
    assert_eq!(code, 0);
    assert!(!err.contains("WARNING"), "{err}");
}

#[test]
fn reports_are_bounded_but_exact_bloat_scans_are_not_and_show_progress() {
    let (cluster, _c) = PgCluster::with_extension(
        "CREATE EXTENSION pgstattuple; CREATE TABLE big AS SELECT g AS id FROM generate_series(1, 10000) g; ANALYZE big;",
    );
    let dsn = cluster.dsn();
    let config = cluster.data_dir().with_file_name("pitstop.toml");
    std::fs::write(&config, "[report]\nstatement_timeout = \"100ms\"\n").unwrap();
    let config = config.to_str().unwrap();

    // A report statement is cancelled after report.statement_timeout (its ANALYZE sleeps 1s).
    let (code, _, err) = pitstop_env(
        &["report", "advice", "SELECT pg_sleep(1)", "--analyze", "--dsn", &dsn, "--config", config],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("statement timeout"), "{err}");
    let (code, out, err) = pitstop_env(
        &[
            "report",
            "advice",
            "SELECT pg_sleep(1)",
            "--analyze",
            "--dsn",
            &dsn,
            "--config",
            config,
            "--statement-timeout",
            "0",
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");

    // --exact has no timeout by default: it waits out a lock held for 1.5s, and says which
    // table it is reading (plain lines: stderr is not a terminal).
    let holder = std::thread::spawn({
        let mut c = cluster.connect();
        move || {
            let mut tx = c.transaction().unwrap();
            tx.batch_execute("LOCK TABLE big IN ACCESS EXCLUSIVE MODE").unwrap();
            std::thread::sleep(Duration::from_millis(1500));
            tx.rollback().unwrap();
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    // --min-bloat 0: the table is listed whatever its bloat (the default lists only 20 % and 10 MB).
    let (code, out, err) = pitstop_env(
        &[
            "report",
            "bloat",
            "--exact",
            "--min-bloat",
            "0",
            "--json",
            "--dsn",
            &dsn,
            "--config",
            config,
        ],
        &[],
    );
    holder.join().unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("bloat --exact: reading every page of"), "{err}");
    assert!(err.contains("reading table public.big"), "{err}");
    assert!(err.contains("bloat --exact: done in"), "{err}");
    assert!(!err.contains('\r'), "{err:?}");
    assert!(out.contains("\"table_name\": \"big\""), "{out}");
}
