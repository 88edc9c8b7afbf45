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
    let reindex = || {
        pitstop(&[
            "--dsn",
            &dsn,
            "maintenance",
            "--yes",
            "--job",
            "reindex",
            "--config",
            config.to_str().unwrap(),
        ])
    };

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
