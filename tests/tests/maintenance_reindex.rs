//! Review R15 finding 2: `REINDEX INDEX CONCURRENTLY` that fails (here: lock_timeout while it
//! waits for an older snapshot) leaves an invalid `<index>_ccnew` copy, maintained on every
//! write. Maintenance drops the copies each attempt left and says so in the action's log row;
//! a copy that cannot be dropped stops the retries.

use pitstop_tests::fixtures::{bloat_big_index, cluster_with_big_index};
use pitstop_tests::{pitstop, ScratchDir};

/// The invalid copies of `index` (`<index>_ccnew…`).
fn copies(c: &mut postgres::Client, index: &str) -> Vec<String> {
    c.query(
        "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
          WHERE NOT i.indisvalid AND c.relname LIKE $1 || '\\_ccnew%' ORDER BY 1",
        &[&index],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// The reindex rows of maintenance_log: (outcome, attempt, detail).
fn reindex_log(c: &mut postgres::Client) -> Vec<(String, i32, Option<String>)> {
    c.query(
        "SELECT outcome, attempt, detail FROM pitstop.maintenance_log
          WHERE action = 'reindex' AND outcome <> 'running' ORDER BY id",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

/// `pitstop maintenance --yes --job reindex` with the configuration at `config`.
fn run_reindex_job(dsn: &str, config: &std::path::Path) -> (i32, String, String) {
    let config = config.to_str().unwrap();
    pitstop(&["--dsn", dsn, "maintenance", "--yes", "--job", "reindex", "--config", config])
}

#[test]
fn a_failed_concurrent_reindex_leaves_no_invalid_copy() {
    let (cluster, mut c) = cluster_with_big_index(200_000);
    bloat_big_index(&mut c);
    c.batch_execute("CREATE TABLE other (id int)").unwrap();
    let dir = ScratchDir::new("reindex-leftovers");
    let config = dir.path().join("pitstop.toml");
    std::fs::write(
        &config,
        "[maintenance]\nlock_timeout = \"1s\"\nretries = 1\nretry_delay = \"1s\"\n\
         [[maintenance.jobs]]\nname = \"reindex\"\nkind = \"reindex\"\nenabled = false\n\
         schedule = \"0 2 * * 0\"\nbloat_pct = 30.0\nmin_bytes = 1000000\n",
    )
    .unwrap();
    let dsn = cluster.dsn();
    let reindex = || run_reindex_job(&dsn, &config);

    // An older snapshot, of another table: the reindex times out waiting for it, and each
    // copy can be dropped (nothing holds a lock on big).
    let mut holder = cluster.connect();
    holder
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM other")
        .unwrap();
    let (_, out, err) = reindex();
    let log = reindex_log(&mut c);
    assert_eq!(log.len(), 2, "two attempts: {log:?}\n{out}\n{err}");
    assert!(log.iter().all(|(outcome, _, _)| outcome == "failed"), "{log:?}");
    for (_, _, detail) in &log {
        let detail = detail.as_deref().unwrap_or("");
        assert!(detail.contains("dropped the invalid index public.big_id_idx_ccnew"), "{log:?}");
    }
    assert_eq!(copies(&mut c, "big_id_idx"), Vec::<String>::new(), "{log:?}");

    // The snapshot holder reads big itself: the copy cannot be dropped while it runs, and
    // no second attempt adds another one.
    holder.batch_execute("COMMIT").unwrap();
    holder
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM big")
        .unwrap();
    let (_, out, err) = reindex();
    let log = reindex_log(&mut c);
    assert_eq!(log.len(), 3, "one more attempt only: {log:?}\n{out}\n{err}");
    let detail = log[2].2.as_deref().unwrap_or("");
    assert!(
        detail.contains("could not be dropped") && detail.contains("DROP INDEX CONCURRENTLY"),
        "{log:?}"
    );
    assert_eq!(copies(&mut c, "big_id_idx").len(), 1, "{log:?}");
    holder.batch_execute("COMMIT").unwrap();
}

/// Review R17 finding 4: the cleanup dropped any invalid index new since the attempt whose
/// name, without `_ccnew[N]`, began the index's name. Now only the names PostgreSQL gives the
/// copy, with the index's definition: invalid indexes that turn up during the attempt named
/// like a copy (`big_ccnew`, a prefix) or with the copy's very name but another definition are
/// left alone, and the attempt's own copy (`big_id_idx_ccnew1`, the first name was taken) is
/// dropped.
#[test]
fn the_cleanup_drops_the_attempts_copy_and_no_index_named_like_one() {
    let (cluster, mut c) = cluster_with_big_index(200_000);
    bloat_big_index(&mut c);
    c.batch_execute(
        "CREATE TABLE other (id int);
         CREATE INDEX big_ccnew ON big (id);
         CREATE INDEX big_id_idx_ccnew ON big (id) WHERE id > 0",
    )
    .unwrap();
    let dir = ScratchDir::new("reindex-lookalikes");
    let config = dir.path().join("pitstop.toml");
    std::fs::write(
        &config,
        "[maintenance]\nlock_timeout = \"2s\"\nretries = 0\n\
         [[maintenance.jobs]]\nname = \"reindex\"\nkind = \"reindex\"\nenabled = false\n\
         schedule = \"0 2 * * 0\"\nbloat_pct = 30.0\nmin_bytes = 1000000\n",
    )
    .unwrap();
    let mut holder = cluster.connect();
    holder
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM other")
        .unwrap();
    let dsn = cluster.dsn();
    let run = std::thread::spawn(move || run_reindex_job(&dsn, &config));
    // While the REINDEX waits for the older snapshot, the look-alikes become invalid.
    let started = std::time::Instant::now();
    loop {
        let waiting: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'REINDEX%' AND state = 'active'",
                &[],
            )
            .unwrap()
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(started.elapsed().as_secs() < 30, "no REINDEX seen");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    c.batch_execute(
        "UPDATE pg_index SET indisvalid = false
          WHERE indexrelid IN ('big_ccnew'::regclass, 'big_id_idx_ccnew'::regclass)",
    )
    .unwrap();
    let (_, out, err) = run.join().unwrap();
    holder.batch_execute("COMMIT").unwrap();
    let log = reindex_log(&mut c);
    assert_eq!(log.len(), 1, "{log:?}\n{out}\n{err}");
    let detail = log[0].2.as_deref().unwrap_or("");
    assert!(detail.contains("dropped the invalid index public.big_id_idx_ccnew1"), "{log:?}");
    let kept: Vec<String> = c
        .query(
            "SELECT relname::text FROM pg_class WHERE relname IN ('big_ccnew', 'big_id_idx_ccnew')
              ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(kept, ["big_ccnew", "big_id_idx_ccnew"], "{log:?}");
    assert_eq!(copies(&mut c, "big_id_idx"), ["big_id_idx_ccnew"], "{log:?}");
}
