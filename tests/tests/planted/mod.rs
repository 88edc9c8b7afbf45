//! The problems the console and `pitstop report problems` tests plant: a lookup no index
//! serves (300 calls), a table full of dead rows (autovacuum off), and (`block`) a blocking
//! lock: one session holds `held`, another waits for it. Shared by tests/tests/console.rs and
//! tests/tests/problems.rs.

use pitstop_tests::{ClusterOptions, PgCluster};

pub struct Planted {
    pub cluster: PgCluster,
    /// The superuser's session (it ran the workload).
    pub client: postgres::Client,
    lock: Option<(postgres::Client, std::thread::JoinHandle<()>)>,
}

/// A cluster with the planted problems; statements over `slow_query_ms` are captured as slow.
pub fn plant(slow_query_ms: u32) -> Planted {
    let options = ClusterOptions {
        settings: vec![
            ("pitstop.slow_query_ms", slow_query_ms.to_string()),
            ("compute_query_id", "on".into()),
            ("autovacuum", "off".into()),
        ],
        ..Default::default()
    };
    let (cluster, mut client) = PgCluster::with_pitstop(
        options,
        "CREATE EXTENSION pg_stat_statements;
         CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, note text);
         INSERT INTO orders SELECT g, g % 5000, repeat('x', 40) FROM generate_series(1, 200000) g;
         CREATE TABLE churn (id int PRIMARY KEY, pad text);
         INSERT INTO churn SELECT g, repeat('y', 100) FROM generate_series(1, 20000) g;
         ANALYZE orders, churn;
         DELETE FROM churn WHERE id > 1000;
         CREATE TABLE held (id int);
         SELECT pg_stat_statements_reset();",
    );
    let lookup = client.prepare("SELECT count(*) FROM orders WHERE customer_id = $1").unwrap();
    for i in 0..300 {
        client.query(&lookup, &[&(i % 5000)]).unwrap();
    }
    Planted { cluster, client, lock: None }
}

impl Planted {
    /// The blocking lock: one session holds `held`, another waits for it.
    pub fn block(&mut self) {
        let mut holder = self.cluster.connect();
        holder.batch_execute("BEGIN; LOCK TABLE held IN ACCESS EXCLUSIVE MODE").unwrap();
        let dsn = self.cluster.dsn();
        let waiter = std::thread::spawn(move || {
            let mut c = postgres::Client::connect(&dsn, postgres::NoTls).unwrap();
            c.batch_execute("SELECT count(*) FROM held").unwrap();
        });
        self.lock = Some((holder, waiter));
    }

    /// Ends the blocking lock.
    pub fn release(&mut self) {
        if let Some((mut holder, waiter)) = self.lock.take() {
            holder.batch_execute("COMMIT").unwrap();
            waiter.join().unwrap();
        }
    }
}
