//! pitstop's result cache under concurrency: a torture test that hunts for stale or
//! rolled-back reads.

use pitstop_tests::query::scalar_i64;
use pitstop_tests::{cache_stats as stats, PgCluster};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

// ---- 7. concurrent torture -------------------------------------------------------------

#[test]
fn concurrent_readers_never_see_stale_or_rolled_back_values() {
    const WRITERS: usize = 3;
    const READERS: usize = 3;
    const OPS: usize = 1000;
    const POISON: i64 = 1_000_000;
    let (cluster, mut setup) = PgCluster::with_extension(
        "CREATE TABLE counter(id int PRIMARY KEY, v bigint); INSERT INTO counter VALUES (1, 0);",
    );
    let q = "select v from counter where id = 1";
    let cached_sql =
        "SELECT v FROM pitstop.cached('select v from counter where id = 1') AS t(v bigint)";
    let started = Instant::now();
    let done = AtomicBool::new(false);
    let committed = AtomicU64::new(0);
    let reads = AtomicU64::new(0);
    let problems: Mutex<Vec<String>> = Mutex::new(Vec::new());
    // A writer's transaction sees its own (poisoned) write, through the cache too.
    let sees_own_write = |c: &mut postgres::Client, w: usize| {
        let own: i64 = c.query_one(cached_sql, &[]).unwrap().get(0);
        if own < POISON {
            problems.lock().unwrap().push(format!("writer {w} did not see its own write: {own}"));
        }
    };
    let s0 = stats(&mut setup);

    std::thread::scope(|scope| {
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let (cluster, committed) = (&cluster, &committed);
            writers.push(scope.spawn(move || {
                let mut c = cluster.connect();
                for i in 0..OPS {
                    match (i + w) % 8 {
                        3 => {
                            // One increment kept, one rolled back to a savepoint.
                            c.batch_execute("BEGIN").unwrap();
                            c.execute("UPDATE counter SET v = v + 1 WHERE id = 1", &[]).unwrap();
                            c.batch_execute("SAVEPOINT s").unwrap();
                            c.execute("UPDATE counter SET v = v + $1 WHERE id = 1", &[&POISON])
                                .unwrap();
                            // The transaction sees its own write, through the cache too.
                            sees_own_write(&mut c, w);
                            c.batch_execute("ROLLBACK TO SAVEPOINT s").unwrap();
                            c.batch_execute("COMMIT").unwrap();
                            committed.fetch_add(1, Ordering::SeqCst);
                        }
                        5 => {
                            c.batch_execute("BEGIN").unwrap();
                            c.execute("UPDATE counter SET v = v + $1 WHERE id = 1", &[&POISON])
                                .unwrap();
                            sees_own_write(&mut c, w);
                            c.batch_execute("ROLLBACK").unwrap();
                        }
                        _ => {
                            c.execute("UPDATE counter SET v = v + 1 WHERE id = 1", &[]).unwrap();
                            committed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    if i % 16 == 0 {
                        // Leave the readers some quiet moments so that hits happen.
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
            }));
        }
        let mut readers = Vec::new();
        for r in 0..READERS {
            let (cluster, done, reads, problems) = (&cluster, &done, &reads, &problems);
            readers.push(scope.spawn(move || {
                let mut c = cluster.connect();
                let mut last = 0i64;
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let floor: i64 = c.query_one(q, &[]).unwrap().get(0);
                    let got: i64 = c.query_one(cached_sql, &[]).unwrap().get(0);
                    let ceiling: i64 = c.query_one(q, &[]).unwrap().get(0);
                    reads.fetch_add(1, Ordering::Relaxed);
                    if got < floor || got > ceiling || got >= POISON || got < last {
                        problems.lock().unwrap().push(format!(
                            "reader {r}: floor {floor} cached {got} ceiling {ceiling} previous {last}"
                        ));
                    }
                    last = got;
                    if finished || started.elapsed() > Duration::from_secs(40) {
                        break;
                    }
                }
            }));
        }
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::SeqCst);
        for r in readers {
            r.join().unwrap();
        }
    });

    let expected = committed.load(Ordering::SeqCst) as i64;
    let final_plain = scalar_i64(&mut setup, q);
    let final_cached: i64 = setup.query_one(cached_sql, &[]).unwrap().get(0);
    let s1 = stats(&mut setup);
    let problems = problems.into_inner().unwrap();
    println!(
        "torture: {} reads, {} committed increments, {:?}; hits {} misses {} fills {} bypasses {} invalidations {}; \
         {} stale/wrong reads",
        reads.load(Ordering::Relaxed),
        expected,
        started.elapsed(),
        s1.hits - s0.hits,
        s1.misses - s0.misses,
        s1.fills - s0.fills,
        s1.bypasses - s0.bypasses,
        s1.invalidations - s0.invalidations,
        problems.len()
    );
    assert_eq!(final_plain, expected);
    assert_eq!(final_cached, expected);
    assert!(
        problems.is_empty(),
        "{} stale or wrong reads, first ones:\n{}",
        problems.len(),
        problems.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(reads.load(Ordering::Relaxed) >= 500, "too few reads to mean anything");
    assert!(s1.hits > s0.hits, "the cache was never used: {s1:?}");
}
