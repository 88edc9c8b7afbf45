//! Set-ups that more than one test file uses.

use crate::PgCluster;
use postgres::Client;

/// A cluster with the extension and table `big(id, payload)` of `rows` analyzed rows, with
/// btree index `big_id_idx` on `id`.
pub fn cluster_with_big_index(rows: u32) -> (PgCluster, Client) {
    PgCluster::with_extension(&format!(
        "CREATE TABLE big(id int, payload text);
         INSERT INTO big SELECT g, 'p' FROM generate_series(1, {rows}) g;
         CREATE INDEX big_id_idx ON big (id);
         ANALYZE big;"
    ))
}

/// Deletes nine rows of `big` in ten, then VACUUM and ANALYZE: `big_id_idx` keeps its pages,
/// mostly empty.
pub fn bloat_big_index(c: &mut Client) {
    for statement in ["DELETE FROM big WHERE id % 10 <> 0", "VACUUM big", "ANALYZE big"] {
        c.batch_execute(statement).unwrap();
    }
}
