//! The harness itself: instances come up on free ports and leave nothing behind.

use pitstop_tests::{PgCluster, RedisServer};
use std::net::TcpStream;

#[test]
fn cluster_is_private_and_removed_on_drop() {
    let cluster = PgCluster::start();
    let data = cluster.data_dir();
    let port = cluster.port;
    let libs: String =
        cluster.connect().query_one("SHOW shared_preload_libraries", &[]).unwrap().get(0);
    assert_eq!(libs, "pg_stat_statements,pitstop");
    drop(cluster);
    assert!(!data.exists(), "data dir left behind");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "server still listening");
}

#[test]
fn cluster_is_removed_when_a_test_panics() {
    let mut seen = None;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let cluster = PgCluster::start();
        seen = Some(cluster.data_dir());
        panic!("simulated test failure");
    }));
    assert!(result.is_err());
    assert!(!seen.unwrap().exists());
}

#[test]
fn redis_server_answers_and_stops() {
    let redis = RedisServer::start();
    assert!(redis.ping());
    let port = redis.port;
    assert!(redis.url().ends_with(&format!(":{port}/")));
    drop(redis);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}
