//! The DBA console in a real browser: a cluster with a workload and planted problems (a
//! missing index, a blocking lock, a table full of dead rows, a `<script>` in a statement's
//! text), the daemon, and Debian's headless `chromium`. Every page loads without a console
//! message (the pages have no script, so any message is an error, a blocked resource or a
//! CSP violation), the overview lists the planted problems, the `<script>` is text, and each
//! page's screenshot is written to `$CARGO_TARGET_DIR/console/<page>.png` (else
//! `target/console/`).

mod planted;

use pitstop_tests::query::scalar_i64;
use pitstop_tests::{poll_until, ClusterOptions, Daemon, DaemonConfig, PgCluster};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A column alias survives pg_stat_statements' normalization and the slow-query capture.
const EVIL: &str = "<script>alert('console')</script>";
static BROWSER_RUN: AtomicU32 = AtomicU32::new(0);

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("console");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What headless Chromium saw at `url`: (the DOM after load, the console messages).
/// With `screenshot` (a path and a window size such as "1280,900"), a PNG there instead.
fn browse(url: &str, screenshot: Option<(&Path, &str)>) -> (String, Vec<String>) {
    let profile = std::env::temp_dir().join(format!(
        "pitstop-console-chromium-{}-{}",
        std::process::id(),
        BROWSER_RUN.fetch_add(1, Ordering::Relaxed)
    ));
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--no-first-run",
        "--disable-extensions",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    match screenshot {
        Some((path, size)) => {
            cmd.arg(format!("--screenshot={}", path.display())).arg(format!("--window-size={size}"))
        }
        None => cmd.arg("--dump-dom"),
    };
    let out = cmd
        .arg(url)
        .output()
        .expect("run chromium (scripts/setup.sh installs it: apt-get install -y chromium)");
    let _ = std::fs::remove_dir_all(&profile);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "chromium failed on {url}: {stderr}");
    let console = stderr.lines().filter(|l| l.contains(":CONSOLE")).map(String::from).collect();
    (String::from_utf8_lossy(&out.stdout).to_string(), console)
}

fn api(daemon: &Daemon, path: &str) -> Value {
    let (code, body) = daemon.get(path);
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

fn problems(daemon: &Daemon) -> Vec<Value> {
    api(daemon, "/api/overview")["problems"].as_array().cloned().unwrap_or_default()
}

#[test]
fn every_console_page_loads_in_chromium_and_the_overview_lists_planted_problems() {
    let mut planted = planted::plant(50);
    // A slow statement carrying a <script>.
    let evil = format!("SELECT pg_sleep(0.06) AS \"{EVIL}\"");
    for _ in 0..3 {
        planted.client.batch_execute(&evil).unwrap();
    }
    planted
        .client
        .batch_execute("SELECT * FROM pitstop.cached('select count(*) from held') AS t(n int8)")
        .unwrap();
    // A slow statement sent with a bind parameter: captured with its $1, which cannot be planned.
    planted.client.query("SELECT pg_sleep(0.06), $1::int AS bound", &[&1i32]).unwrap();
    planted.block();
    let cluster = &planted.cluster;

    let daemon = Daemon::start(
        &DaemonConfig::new(&cluster.dsn(), "").set("http", "console = true").toml(),
        &[],
    );
    let found = poll_until(Duration::from_secs(60), || {
        let p = problems(&daemon);
        let has = |category: &str, text: &str| {
            p.iter().any(|x| {
                x["category"] == category
                    && (x["title"].as_str().unwrap_or("").contains(text)
                        || x["fix"].as_str().unwrap_or("").contains(text))
            })
        };
        has("missing_index", "customer_id")
            && has("blocking_lock", "on public.held, blocked by pid")
            && has("vacuum", "churn")
    });
    assert!(
        found,
        "planted problems missing from the overview: {:#}\n{}",
        api(&daemon, "/api/overview"),
        daemon.log()
    );
    // The advice ran as a superuser, yet over HTTP nothing is written: no suggestion remembered.
    let remembered =
        scalar_i64(&mut cluster.connect(), "SELECT count(*) FROM pitstop.index_suggestions");
    assert_eq!(remembered, 0, "the console's advice wrote pitstop.index_suggestions");

    // Most urgent first: the blocking lock outranks the setting advice.
    let p = problems(&daemon);
    let rank = |s: &str| match s {
        "critical" => 0,
        "warning" => 1,
        _ => 2,
    };
    let ranks: Vec<u8> = p.iter().map(|x| rank(x["severity"].as_str().unwrap())).collect();
    assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "not most urgent first: {p:#?}");

    // The statements, the one with the script and the lookup's own page.
    let statements = api(&daemon, "/api/queries?sort=mean")["statements"]["rows"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let id_of = |needle: &str| {
        statements
            .iter()
            .find(|s| s["query"].as_str().unwrap_or("").contains(needle))
            .map(|s| s["queryid"].as_i64().unwrap())
    };
    let lookup_id = id_of("customer_id").expect("the lookup in /api/queries");
    let evil_id = id_of("<script>").expect("the slow statement in /api/queries");
    let bound_id = id_of("AS bound").expect("the bound statement in /api/queries");
    assert!(
        statements[..2].iter().all(|s| s["query"].as_str().unwrap_or("").contains("pg_sleep")),
        "sorted by mean time, the sleeping statements first: {statements:#?}"
    );
    let evil_page = api(&daemon, &format!("/api/queries/{evil_id}"));
    assert!(
        evil_page["slow_executions"]["rows"].as_array().is_some_and(|r| !r.is_empty()),
        "{evil_page:#}"
    );
    let lookup_page = api(&daemon, &format!("/api/queries/{lookup_id}"));
    assert!(
        lookup_page["helping_indexes"].as_array().is_some_and(|h| h
            .iter()
            .any(|i| i["ddl"].as_str().unwrap_or("").contains("customer_id"))),
        "the suggested index is listed on the statement it helps: {lookup_page:#}"
    );
    assert_eq!(daemon.get("/api/queries?sort=nope").0, 400);

    let base = format!("http://127.0.0.1:{}", daemon.http_port());
    let pages = [
        ("overview", "/".to_string()),
        ("queries", "/queries".to_string()),
        ("statement", format!("/queries/{evil_id}")),
        ("statement-lookup", format!("/queries/{lookup_id}")),
        ("statement-bound", format!("/queries/{bound_id}")),
        ("indexes", "/indexes".to_string()),
        ("vacuum", "/vacuum".to_string()),
        ("settings", "/settings".to_string()),
        ("connections", "/connections".to_string()),
        ("cache", "/cache".to_string()),
        ("maintenance", "/maintenance".to_string()),
        ("host", "/host".to_string()),
    ];
    let shots = screenshot_dir();
    for (name, path) in &pages {
        let (dom, console) = browse(&format!("{base}{path}"), None);
        assert!(console.is_empty(), "{path}: console messages {console:#?}");
        assert!(
            dom.contains("<nav>") && dom.contains("Connections &amp; locks"),
            "{path}: no navigation:\n{dom}"
        );
        assert!(
            !dom.to_ascii_lowercase().contains("<script"),
            "{path}: a <script> element reached the page:\n{dom}"
        );
        assert!(!dom.contains("class=\"err\""), "{path}: a section could not be read:\n{dom}");
        let png = shots.join(format!("{name}.png"));
        let _ = std::fs::remove_file(&png);
        let (_, console) = browse(&format!("{base}{path}"), Some((&png, "1280,900")));
        assert!(console.is_empty(), "{path}: console messages {console:#?}");
        assert!(
            std::fs::metadata(&png).map(|m| m.len() > 1000).unwrap_or(false),
            "no screenshot of {path} at {}",
            png.display()
        );
    }
    // And on a phone.
    let phone = shots.join("overview-phone.png");
    browse(&format!("{base}/"), Some((&phone, "390,844")));
    assert!(
        std::fs::metadata(&phone).map(|m| m.len() > 1000).unwrap_or(false),
        "no screenshot at {}",
        phone.display()
    );

    // What the DBA sees: the planted problems with their fixes, the script as text.
    let (overview, _) = browse(&format!("{base}/"), None);
    for text in [
        "Missing index on",
        "customer_id",
        "AccessShareLock on public.held",
        "churn: vacuum overdue",
        "pg_terminate_backend",
        "VACUUM",
    ] {
        assert!(overview.contains(text), "{text} missing from the overview:\n{overview}");
    }
    let escaped = "&lt;script&gt;alert('console')&lt;/script&gt;";
    assert!(
        overview.contains(escaped),
        "the slow statement's text, as text, on the overview:\n{overview}"
    );
    let (statement, _) = browse(&format!("{base}/queries/{evil_id}"), None);
    assert!(statement.contains(escaped), "{statement}");
    let (bound, _) = browse(&format!("{base}/queries/{bound_id}"), None);
    assert!(bound.contains("not planned here: the captured text has bind parameters"), "{bound}");
    let (lookup_html, _) = browse(&format!("{base}/queries/{lookup_id}"), None);
    assert!(
        lookup_html.contains("CREATE INDEX CONCURRENTLY") && lookup_html.contains("customer_id"),
        "{lookup_html}"
    );

    planted.release();
}

/// A role without pg_monitor: pages say what is missing instead of failing.
#[test]
fn a_role_without_rights_gets_a_message_not_a_500() {
    let (cluster, _client) =
        PgCluster::with_extension("CREATE EXTENSION pg_stat_statements; CREATE ROLE nobody LOGIN");
    let dsn = format!("host=127.0.0.1 port={} user=nobody dbname=postgres", cluster.port);
    let daemon =
        Daemon::start(&DaemonConfig::new(&dsn, "").set("http", "console = true").toml(), &[]);
    for path in ["/", "/vacuum", "/connections", "/cache", "/indexes", "/maintenance", "/queries"] {
        let (code, html) = daemon.get(path);
        assert_eq!(code, 200, "{path}: {html}");
        assert!(html.contains("lacks the rights to read this (SQLSTATE 42501"), "{path}:\n{html}");
    }
    let overview = api(&daemon, "/api/overview");
    assert_eq!(overview["unread"]["vacuum_health"]["error"]["sqlstate"], "42501", "{overview:#}");
    assert_eq!(overview["unread"]["vacuum_health"]["error"]["kind"], "denied", "{overview:#}");
}

/// The statement page plans a captured statement for `explain_advice` only when it is the
/// daemon's role's own: planning folds immutable functions, and another role's statement must
/// never run anything with the daemon's rights (DESIGN's first security rule).
#[test]
fn the_statement_page_never_plans_another_roles_statement_with_the_daemons_rights() {
    let options = ClusterOptions {
        settings: vec![("pitstop.slow_query_ms", "50".into()), ("compute_query_id", "on".into())],
        ..Default::default()
    };
    let (cluster, mut client) = PgCluster::with_pitstop(
        options,
        "CREATE EXTENSION pg_stat_statements;
         CREATE ROLE alice LOGIN;
         CREATE FUNCTION public.spy(int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS
           $$ BEGIN RAISE LOG 'spy ran as %', current_user; RETURN $1; END $$;",
    );
    let mut alice = cluster.connect_as("alice", "postgres");
    alice.batch_execute("SELECT public.spy(7), pg_sleep(0.06)").unwrap();
    let id = scalar_i64(
        &mut client,
        "SELECT queryid FROM pitstop.slow_queries WHERE query LIKE '%spy(7)%' LIMIT 1",
    );
    let daemon = Daemon::start(
        &DaemonConfig::new(&cluster.dsn(), "").set("http", "console = true").toml(),
        &[],
    );
    let page = api(&daemon, &format!("/api/queries/{id}"));
    assert_eq!(page["slow_executions"]["rows"][0]["username"], "alice", "{page:#}");
    let (code, html) = daemon.get(&format!("/queries/{id}"));
    assert_eq!(code, 200, "{html}");
    assert!(cluster.log().contains("spy ran as alice"), "the statement ran:\n{}", cluster.log());
    assert!(
        !cluster.log().contains("spy ran as postgres"),
        "the console planned alice's statement as postgres:\n{}",
        cluster.log()
    );
    assert!(
        html.contains("not planned here"),
        "the page says why there is no plan advice:\n{html}"
    );
}

/// A server that accepts connections and never answers: the console's pages still answer,
/// within about one `postgres.connect_timeout`, saying PostgreSQL is unreachable (the driver's
/// own timeout covers only the socket's connect, not the startup that never completes).
#[test]
fn pages_answer_while_postgres_never_does() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dsn = format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres",
        silent.local_addr().unwrap().port()
    );
    let daemon = Daemon::start(
        &DaemonConfig::new(&dsn, "")
            .set("http", "console = true")
            .set("postgres", "connect_timeout = \"1s\"")
            .toml(),
        &[],
    );
    for path in ["/api/overview", "/", "/vacuum"] {
        let started = std::time::Instant::now();
        let (code, body) = pitstop_tests::http_get(daemon.http_port(), path)
            .unwrap_or_else(|e| panic!("{path}: no answer: {e}"));
        assert_eq!(code, 200, "{path}: {body}");
        assert!(started.elapsed() < Duration::from_secs(4), "{path} took {:?}", started.elapsed());
        assert!(body.contains("PostgreSQL is not reachable"), "{path}: {body}");
    }
    drop(silent);
}

#[test]
fn without_http_console_no_statement_text_is_served() {
    let (cluster, mut c) = PgCluster::with_extension("CREATE EXTENSION pg_stat_statements");
    c.batch_execute("SELECT 'a secret literal' AS x").unwrap();
    let daemon = Daemon::start(&DaemonConfig::new(&cluster.dsn(), "").toml(), &[]);
    assert!(
        poll_until(Duration::from_secs(20), || daemon.get("/readyz").0 == 200),
        "{}",
        daemon.log()
    );
    // `/` is the status page (numbers and states, no statement text), as `/host` is.
    let (code, page) = daemon.get("/");
    assert_eq!(code, 200);
    assert!(
        page.contains("<title>Host · pitstop</title>") && !page.contains("<nav"),
        "`/` is not the status page alone:\n{page}"
    );
    for path in [
        "/queries",
        "/connections",
        "/cache",
        "/indexes",
        "/api/overview",
        "/api/connections",
        "/api/queries",
    ] {
        let (code, body) = daemon.get(path);
        assert_eq!(code, 404, "{path} is served without http.console: {body}");
    }
    assert!(!page.contains("secret literal"));
}
