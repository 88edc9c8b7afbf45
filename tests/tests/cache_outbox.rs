//! The invalidation outbox on a real cluster: committed writes of tracked tables are recorded
//! and notified, also for an application role without rights on the outbox.

use pitstop_tests::cache_call::expect_error;
use pitstop_tests::query::{first_column, first_two_columns, scalar_i64};
use pitstop_tests::PgCluster;
use postgres::error::SqlState;
use postgres::Client;
use std::time::Duration;

// ---- 8. outbox -------------------------------------------------------------------------

fn outbox_count(c: &mut Client) -> i64 {
    scalar_i64(c, "SELECT count(*) FROM pitstop.invalidation_outbox")
}

fn next_notification(c: &mut Client, wait: Duration) -> Option<postgres::Notification> {
    use postgres::fallible_iterator::FallibleIterator;
    c.notifications().timeout_iter(wait).next().unwrap()
}

#[test]
fn outbox_records_committed_writes_of_tracked_tables() {
    let (cluster, mut a) = PgCluster::with_extension(
        "CREATE TABLE orders(id int, v int);
         CREATE TABLE other(id int);
         SELECT pitstop.cache_track('orders', ARRAY['orders-list', 'tenant:1']);",
    );
    let tracked: Vec<(String, Vec<String>)> =
        first_two_columns(&mut a, "SELECT relation::text, tags FROM pitstop.cache_tracked", &[]);
    let tags = vec!["postgres.public.orders".to_string(), "orders-list".into(), "tenant:1".into()];
    assert_eq!(tracked, [("orders".to_string(), tags.clone())]);

    let mut listener = cluster.connect();
    listener.batch_execute("LISTEN pitstop_invalidation").unwrap();
    let mut b = cluster.connect();

    // An INSERT of several rows: one outbox row, after commit, with one notification.
    b.batch_execute("BEGIN; INSERT INTO orders SELECT g, g FROM generate_series(1, 5) g;").unwrap();
    assert!(
        next_notification(&mut listener, Duration::from_millis(300)).is_none(),
        "notified before commit"
    );
    assert_eq!(outbox_count(&mut a), 0, "uncommitted outbox row visible");
    b.batch_execute("COMMIT").unwrap();
    let row = a
        .query_one(
            "SELECT id, database::text, relation, relid = 'orders'::regclass, tags, xid::text::bigint > 0
             FROM pitstop.invalidation_outbox",
            &[],
        )
        .unwrap();
    let id: i64 = row.get(0);
    assert_eq!(row.get::<_, String>(1), "postgres");
    assert_eq!(row.get::<_, String>(2), "public.orders");
    assert!(row.get::<_, bool>(3));
    assert_eq!(row.get::<_, Vec<String>>(4), tags);
    assert!(row.get::<_, bool>(5));
    let n = next_notification(&mut listener, Duration::from_secs(5))
        .expect("no notification after commit");
    assert_eq!(n.channel(), "pitstop_invalidation");
    let payload: serde_json::Value = serde_json::from_str(n.payload()).unwrap();
    assert_eq!(payload, serde_json::json!({"id": id, "relation": "public.orders"}));

    // A rolled-back UPDATE leaves no row and no notification.
    b.batch_execute("BEGIN; UPDATE orders SET v = v + 1; ROLLBACK;").unwrap();
    assert_eq!(outbox_count(&mut a), 1);
    assert!(
        next_notification(&mut listener, Duration::from_millis(300)).is_none(),
        "notified for a rollback"
    );
    // Writes to an untracked table add nothing.
    b.batch_execute("INSERT INTO other VALUES (1)").unwrap();
    assert_eq!(outbox_count(&mut a), 1);

    // UPDATE, DELETE and TRUNCATE append too (one row per statement).
    b.batch_execute(
        "UPDATE orders SET v = v + 1; DELETE FROM orders WHERE id = 1; TRUNCATE orders;",
    )
    .unwrap();
    let relations: Vec<String> = first_column(
        &mut a,
        "SELECT relation FROM pitstop.invalidation_outbox WHERE id > $1 ORDER BY id",
        &[&id],
    );
    assert_eq!(relations, ["public.orders"; 3]);
    let mut ids = Vec::new();
    while let Some(n) = next_notification(&mut listener, Duration::from_secs(2)) {
        ids.push(
            serde_json::from_str::<serde_json::Value>(n.payload()).unwrap()["id"].as_i64().unwrap(),
        );
        if ids.len() == 3 {
            break;
        }
    }
    assert_eq!(ids.len(), 3, "one notification per writing statement: {ids:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]) && ids[0] > id, "{ids:?}");

    // Untracking stops it.
    assert!(a.query_one("SELECT pitstop.cache_untrack('orders')", &[]).unwrap().get::<_, bool>(0));
    assert!(!a.query_one("SELECT pitstop.cache_untrack('orders')", &[]).unwrap().get::<_, bool>(0));
    assert_eq!(scalar_i64(&mut a, "SELECT count(*) FROM pitstop.cache_tracked"), 0);
    let count = outbox_count(&mut a);
    b.batch_execute("INSERT INTO orders VALUES (7, 7)").unwrap();
    assert_eq!(outbox_count(&mut a), count);
    assert!(next_notification(&mut listener, Duration::from_millis(300)).is_none());
}

#[test]
fn outbox_works_for_an_application_role_without_outbox_privileges() {
    let (cluster, mut a) = PgCluster::with_extension(
        "CREATE TABLE orders(id int, v int);
         CREATE ROLE app LOGIN;
         GRANT SELECT, INSERT, UPDATE, DELETE ON orders TO app;
         SELECT pitstop.cache_track('orders');",
    );
    let mut app = cluster.connect_as("app", "postgres");
    // The application cannot touch the outbox directly...
    expect_error(
        app.query("SELECT * FROM pitstop.invalidation_outbox", &[]),
        &SqlState::INSUFFICIENT_PRIVILEGE,
        "read outbox",
    );
    expect_error(
        app.execute(
            "INSERT INTO pitstop.invalidation_outbox(relation, relid, tags) VALUES ('x', 0, '{}')",
            &[],
        ),
        &SqlState::INSUFFICIENT_PRIVILEGE,
        "forge outbox row",
    );
    // ...but its writes to the tracked table are recorded.
    app.batch_execute("INSERT INTO orders VALUES (1, 1)").unwrap();
    app.batch_execute("UPDATE orders SET v = 2").unwrap();
    let rows: Vec<(String, Vec<String>)> = first_two_columns(
        &mut a,
        "SELECT relation, tags FROM pitstop.invalidation_outbox ORDER BY id",
        &[],
    );
    let expected = ("public.orders".to_string(), vec!["postgres.public.orders".to_string()]);
    assert_eq!(rows, [expected.clone(), expected]);
    // A search_path trick in the writer's session does not redirect the trigger's insert.
    app.batch_execute("SET search_path = pg_temp, public; UPDATE orders SET v = 3").unwrap();
    assert_eq!(outbox_count(&mut a), 3);

    // Bad arguments are clear errors.
    a.batch_execute("CREATE VIEW ov AS SELECT * FROM orders").unwrap();
    expect_error(
        a.query("SELECT pitstop.cache_track('ov')", &[]),
        &SqlState::WRONG_OBJECT_TYPE,
        "track a view",
    );
    expect_error(
        a.query("SELECT pitstop.cache_track('orders', ARRAY['ok', ''])", &[]),
        &SqlState::INVALID_PARAMETER_VALUE,
        "empty tag",
    );
    expect_error(
        a.query("SELECT pitstop.cache_track(NULL)", &[]),
        &SqlState::NULL_VALUE_NOT_ALLOWED,
        "NULL rel",
    );
}
