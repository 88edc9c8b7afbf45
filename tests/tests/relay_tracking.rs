//! Which writes the Redis relay hears about. Only the tables tracked with `cache_track` (and
//! the partitions of tracked partitioned tables) produce invalidations, with the tags the
//! tracker registered: no role can attach the outbox trigger on its own or choose its tags
//! through the trigger's arguments. A write that reaches a tracked partitioned table through
//! one of its partitions (at any depth, created or attached before or after tracking)
//! invalidates the partitioned table, and so do ATTACH and DETACH PARTITION.

use pitstop_tests::cache_call::expect_error;
use pitstop_tests::query::{first_column, first_two_columns};
use pitstop_tests::{poll_until, tag_version, Daemon, DaemonConfig, PgCluster, RedisServer};
use postgres::error::SqlState;
use postgres::Client;
use std::time::Duration;

// ---- helpers ---------------------------------------------------------------------------

/// The outbox rows after `after_id`, as (relation, tags), in id order.
fn outbox_after(pg: &mut Client, after_id: i64) -> Vec<(String, Vec<String>)> {
    let sql = "SELECT relation, tags FROM pitstop.invalidation_outbox WHERE id > $1 ORDER BY id";
    first_two_columns(pg, sql, &[&after_id])
}

fn last_outbox_id(pg: &mut Client) -> i64 {
    pg.query_one("SELECT coalesce(max(id), 0) FROM pitstop.invalidation_outbox", &[])
        .unwrap()
        .get(0)
}

fn row(relation: &str, tags: &[&str]) -> (String, Vec<String>) {
    (relation.to_string(), tags.iter().map(|t| t.to_string()).collect())
}

fn start_relay(cluster: &PgCluster, redis: &RedisServer) -> Daemon {
    let daemon = Daemon::start(&DaemonConfig::new(&cluster.dsn(), &redis.url()).toml(), &[]);
    let up = poll_until(Duration::from_secs(20), || {
        daemon.status()["components"]["relay"]["state"] == "up"
    });
    assert!(up, "relay never came up: {}\n{}", daemon.status(), daemon.log());
    daemon
}

/// Runs `write` and waits until Redis has one more invalidation of `tag`.
fn expect_invalidation(
    redis: &mut redis::Connection,
    daemon: &Daemon,
    tag: &str,
    what: &str,
    write: impl FnOnce(),
) {
    let before = tag_version(redis, tag);
    write();
    let bumped = poll_until(Duration::from_secs(10), || tag_version(redis, tag) > before);
    assert!(bumped, "{what} did not invalidate {tag}; log:\n{}", daemon.log());
}

fn pitstop_triggers(pg: &mut Client) -> Vec<String> {
    let sql = "SELECT tgrelid::regclass::text FROM pg_trigger WHERE tgname = 'pitstop_invalidation' ORDER BY 1";
    pg.query(sql, &[]).unwrap().iter().map(|r| r.get(0)).collect()
}

// ---- who may make the relay invalidate (review finding 8) ------------------------------

/// `app` may neither track nor untrack `orders`, nor write the registry for it.
fn cannot_track_orders(app: &mut Client) {
    let denied = SqlState::INSUFFICIENT_PRIVILEGE;
    let track = app.batch_execute("SELECT pitstop.cache_track('orders', ARRAY['sessions'])");
    expect_error(track, &denied, "track another's table");
    let untrack = app.batch_execute("SELECT pitstop.cache_untrack('orders')");
    expect_error(untrack, &denied, "untrack another's table");
    let register =
        app.batch_execute("INSERT INTO pitstop.cache_tracking VALUES ('orders', '{sessions}')");
    expect_error(register, &denied, "register another's table");
}

/// An application role with USAGE on the schema (so that it can call `cached()`) cannot
/// attach the SECURITY DEFINER outbox trigger, cannot track or untrack a table it may not
/// create triggers on, and cannot write the registry for one; even a trigger a superuser
/// attaches by hand to an untracked table, with tags as arguments, writes nothing.
#[test]
fn only_cache_track_decides_what_is_invalidated_with_which_tags() {
    let (cluster, mut pg) = PgCluster::with_extension(
        "CREATE ROLE app LOGIN;
         GRANT USAGE ON SCHEMA pitstop TO app;
         CREATE SCHEMA app AUTHORIZATION app;
         CREATE TABLE orders (id int, v int);
         GRANT SELECT, INSERT, UPDATE, DELETE ON orders TO app;
         SELECT pitstop.cache_track('orders', ARRAY['orders-list']);",
    );
    let mut app = cluster.connect_as("app", "postgres");
    app.batch_execute("CREATE TABLE app.junk (x int)").unwrap();

    // The review's reproduction, as a role that owns a table but is no superuser.
    for args in ["'sessions', 'orders:list', 'whatever'", ""] {
        let attach = format!(
            "CREATE TRIGGER x AFTER INSERT ON app.junk FOR EACH STATEMENT EXECUTE FUNCTION pitstop.invalidation_outbox_append({args})"
        );
        expect_error(
            app.batch_execute(&attach),
            &SqlState::INSUFFICIENT_PRIVILEGE,
            "attach the outbox trigger",
        );
    }
    // Neither through cache_track nor the registry for a table it may only write.
    let denied = SqlState::INSUFFICIENT_PRIVILEGE;
    cannot_track_orders(&mut app);
    expect_error(
        app.batch_execute("UPDATE pitstop.cache_tracking SET tags = '{sessions}'"),
        &denied,
        "retag the registry",
    );
    expect_error(
        app.batch_execute("DELETE FROM pitstop.cache_tracking"),
        &denied,
        "empty the registry",
    );
    // Not even its own table, until the DBA delegates tracking.
    expect_error(
        app.batch_execute("SELECT pitstop.cache_track('app.junk', ARRAY['sessions'])"),
        &denied,
        "track without the grant",
    );
    expect_error(
        app.batch_execute("INSERT INTO pitstop.cache_tracking VALUES ('app.junk', '{sessions}')"),
        &denied,
        "register without the grant",
    );
    // Syncing the triggers is open to all and changes nothing the registry does not say.
    app.batch_execute("SELECT pitstop.cache_tracking_sync('orders'); SELECT pitstop.cache_tracking_sync('app.junk')").unwrap();
    assert_eq!(pitstop_triggers(&mut pg), ["orders"]);

    // A superuser's hand-made triggers: tags come from the registry, never from TG_ARGV.
    pg.batch_execute(
        "CREATE TABLE untracked (x int);
         CREATE TRIGGER spoof AFTER INSERT ON untracked FOR EACH STATEMENT
           EXECUTE FUNCTION pitstop.invalidation_outbox_append('sessions', 'orders:list');
         CREATE TRIGGER spoof AFTER INSERT ON orders FOR EACH STATEMENT
           EXECUTE FUNCTION pitstop.invalidation_outbox_append('sessions');",
    )
    .unwrap();
    let start = last_outbox_id(&mut pg);
    pg.batch_execute("INSERT INTO untracked VALUES (1)").unwrap();
    assert_eq!(outbox_after(&mut pg, start), [], "an untracked table wrote to the outbox");

    // Delegated, a role tracks the tables it may create triggers on, and only those.
    pg.batch_execute(
        "GRANT EXECUTE ON FUNCTION pitstop.cache_track(regclass, text[]), pitstop.cache_untrack(regclass) TO app;
         GRANT INSERT, UPDATE, DELETE ON pitstop.cache_tracking TO app;",
    )
    .unwrap();
    cannot_track_orders(&mut app);
    assert_eq!(
        app.execute("UPDATE pitstop.cache_tracking SET tags = '{sessions}'", &[]).unwrap(),
        0
    );
    assert_eq!(app.execute("DELETE FROM pitstop.cache_tracking", &[]).unwrap(), 0);
    // A temporary table, which any role may create, cannot carry tags either.
    app.batch_execute("CREATE TEMP TABLE scratch (x int)").unwrap();
    expect_error(
        app.batch_execute("SELECT pitstop.cache_track('scratch', ARRAY['sessions'])"),
        &SqlState::FEATURE_NOT_SUPPORTED,
        "track a temporary table",
    );

    // The application's writes to the tracked table still carry the registered tags (through
    // either trigger), and a role may track its own table with tags of its choosing.
    app.batch_execute("INSERT INTO orders VALUES (1, 1)").unwrap();
    pg.batch_execute("DROP TRIGGER spoof ON orders").unwrap();
    app.batch_execute("SELECT pitstop.cache_track('app.junk', ARRAY['junk-list']); INSERT INTO app.junk VALUES (1)").unwrap();
    let orders = row("public.orders", &["postgres.public.orders", "orders-list"]);
    assert_eq!(
        outbox_after(&mut pg, start),
        [orders.clone(), orders, row("app.junk", &["postgres.app.junk", "junk-list"])]
    );
    let tracked: Vec<(String, Vec<String>)> = first_two_columns(
        &mut pg,
        "SELECT relation::text, tags FROM pitstop.cache_tracked ORDER BY 1",
        &[],
    );
    assert_eq!(
        tracked,
        [
            row("app.junk", &["postgres.app.junk", "junk-list"]),
            row("orders", &["postgres.public.orders", "orders-list"])
        ]
    );

    // A dropped table leaves the registry.
    app.batch_execute("DROP TABLE app.junk").unwrap();
    let registered: i64 =
        pg.query_one("SELECT count(*) FROM pitstop.cache_tracking", &[]).unwrap().get(0);
    assert_eq!(registered, 1);
}

/// End to end: the registered tags reach Redis; tags a superuser gave a hand-made trigger
/// on an untracked table never do.
#[test]
fn registered_tags_reach_redis_and_trigger_arguments_do_not() {
    let (cluster, mut pg) = PgCluster::with_extension(
        "CREATE TABLE orders (id int);
         CREATE TABLE junk (x int);
         SELECT pitstop.cache_track('orders', ARRAY['orders-list']);
         CREATE TRIGGER spoof AFTER INSERT ON junk FOR EACH STATEMENT
           EXECUTE FUNCTION pitstop.invalidation_outbox_append('sessions');",
    );
    let redis = RedisServer::start();
    let mut r = redis.client();
    let daemon = start_relay(&cluster, &redis);
    // Delivered in outbox order: once orders' invalidation is in, junk's would have been.
    pg.batch_execute("INSERT INTO junk VALUES (1)").unwrap();
    expect_invalidation(&mut r, &daemon, "orders-list", "INSERT INTO orders", || {
        pg.batch_execute("INSERT INTO orders VALUES (1)").unwrap()
    });
    assert_eq!(tag_version(&mut r, "postgres.public.orders"), 1);
    assert_eq!(tag_version(&mut r, "sessions"), 0, "a trigger argument became an invalidation");
    assert_eq!(
        tag_version(&mut r, "postgres.public.junk"),
        0,
        "an untracked table was invalidated"
    );
}

// ---- partitions of a tracked table (review finding 9) ----------------------------------

const M_TAGS: [&str; 2] = ["postgres.public.m", "m:list"];

/// `m` (list) with leaf `m_a` and sub-partitioned `m_b` (range) with leaf `m_b_lo`, tracked.
fn partitioned_cluster() -> (PgCluster, Client) {
    let (cluster, pg) = PgCluster::with_extension(
        "CREATE TABLE m (id int, r text) PARTITION BY LIST (r);
         CREATE TABLE m_a PARTITION OF m FOR VALUES IN ('a');
         CREATE TABLE m_b PARTITION OF m FOR VALUES IN ('b') PARTITION BY RANGE (id);
         CREATE TABLE m_b_lo PARTITION OF m_b FOR VALUES FROM (0) TO (100);
         INSERT INTO m VALUES (1, 'a'), (2, 'b');
         SELECT pitstop.cache_track('m', ARRAY['m:list']);",
    );
    (cluster, pg)
}

#[test]
fn writes_to_a_partition_invalidate_the_tracked_partitioned_table() {
    let (cluster, mut pg) = partitioned_cluster();
    let redis = RedisServer::start();
    let mut r = redis.client();
    let daemon = start_relay(&cluster, &redis);
    let start = last_outbox_id(&mut pg);

    let writes = [
        "INSERT INTO m_a VALUES (3, 'a')",
        "INSERT INTO m_b_lo VALUES (4, 'b')",
        "UPDATE m_a SET id = 5",
        "TRUNCATE m_a",
    ];
    for sql in writes {
        expect_invalidation(&mut r, &daemon, "m:list", sql, || pg.batch_execute(sql).unwrap());
    }
    expect_invalidation(&mut r, &daemon, "postgres.public.m", "COPY m_a FROM STDIN", || {
        let mut copy = pg.copy_in("COPY m_a FROM STDIN").unwrap();
        std::io::Write::write_all(&mut copy, b"6\ta\n").unwrap();
        copy.finish().unwrap();
    });
    // One row per statement, relayed as the partitioned table with its tags.
    assert_eq!(outbox_after(&mut pg, start), vec![row("public.m", &M_TAGS); 5]);
    assert_eq!(pitstop_triggers(&mut pg), ["m", "m_a", "m_b", "m_b_lo"]);
}

#[test]
fn attached_detached_and_later_partitions_follow_the_tracked_table() {
    let (cluster, mut pg) = partitioned_cluster();
    pg.batch_execute(
        "CREATE TABLE m_c (id int, r text);
         INSERT INTO m_c VALUES (10, 'c');
         CREATE TABLE other (v int);
         SELECT pitstop.cache_track('other');",
    )
    .unwrap();
    let redis = RedisServer::start();
    let mut r = redis.client();
    let daemon = start_relay(&cluster, &redis);
    let start = last_outbox_id(&mut pg);
    let mut step = |what: &str, sql: &str| {
        expect_invalidation(&mut r, &daemon, "m:list", what, || pg.batch_execute(sql).unwrap())
    };

    // Attaching a filled table adds rows, and its own writes count from then on.
    step("ATTACH PARTITION", "ALTER TABLE m ATTACH PARTITION m_c FOR VALUES IN ('c')");
    step("INSERT INTO an attached partition", "INSERT INTO m_c VALUES (11, 'c')");
    // Partitions created after cache_track, also a level down.
    step(
        "INSERT INTO a partition created later",
        "CREATE TABLE m_d PARTITION OF m FOR VALUES IN ('d'); INSERT INTO m_d VALUES (12, 'd')",
    );
    step(
        "INSERT INTO a sub-partition created later",
        "CREATE TABLE m_b_hi PARTITION OF m_b FOR VALUES FROM (100) TO (200); INSERT INTO m_b_hi VALUES (150, 'b')",
    );
    // Detaching removes rows; the detached table is on its own afterwards.
    step("DETACH PARTITION", "ALTER TABLE m DETACH PARTITION m_a");
    step("DETACH PARTITION CONCURRENTLY", "ALTER TABLE m DETACH PARTITION m_d CONCURRENTLY");
    let detached = last_outbox_id(&mut pg);
    pg.batch_execute("INSERT INTO m_a VALUES (13, 'a'); INSERT INTO m_d VALUES (13, 'd')").unwrap();
    assert_eq!(outbox_after(&mut pg, detached), [], "a detached partition still invalidates");
    assert_eq!(pitstop_triggers(&mut pg), ["m", "m_b", "m_b_hi", "m_b_lo", "m_c", "other"]);
    let all = outbox_after(&mut pg, start);
    assert_eq!(
        all,
        vec![row("public.m", &M_TAGS); 6],
        "one row per statement, as the partitioned table"
    );

    // Untracking removes the trigger from every partition.
    assert!(pg.query_one("SELECT pitstop.cache_untrack('m')", &[]).unwrap().get::<_, bool>(0));
    assert_eq!(
        pitstop_triggers(&mut pg),
        ["other"],
        "only the other tracked table keeps its trigger"
    );
    let untracked = last_outbox_id(&mut pg);
    pg.batch_execute("INSERT INTO m_c VALUES (14, 'c'); INSERT INTO m_b_hi VALUES (160, 'b'); ALTER TABLE m DETACH PARTITION m_c").unwrap();
    assert_eq!(outbox_after(&mut pg, untracked), []);
    let tracked: Vec<String> =
        first_column(&mut pg, "SELECT relation::text FROM pitstop.cache_tracked", &[]);
    assert_eq!(tracked, ["other"]);
}
