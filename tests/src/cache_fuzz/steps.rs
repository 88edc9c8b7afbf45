//! The steps a session takes: writes, DDL, settings, transaction control and temporary
//! tables, drawn from the seed. Reads are drawn in `mod.rs` from the query pool.

use super::schema::{Roles, INSERT_COLUMNS};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

/// What a statement does to the session's transaction state.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Begin,
    /// COMMIT or ROLLBACK: the transaction ends whatever happens.
    End,
    Savepoint(String),
    RollbackTo(String),
    Release(String),
    /// PREPARE TRANSACTION: the session's transaction ends; the gid waits for COMMIT PREPARED.
    Prepare(String),
    /// COMMIT/ROLLBACK PREPARED of this gid.
    Resolve(String),
    Other,
}

#[derive(Clone, Debug)]
pub enum Step {
    /// A read of the query pool's entry `query` through the cache (`cached`, or `cached_json`
    /// when `json`), then plainly.
    Read {
        query: usize,
        params: Vec<String>,
        ttl: Option<&'static str>,
        json: bool,
    },
    Sql {
        sql: String,
        kind: Kind,
    },
    /// `COPY … FROM STDIN` with these data lines.
    Copy {
        sql: String,
        data: String,
    },
}

/// Areas of defects a run can leave out (`--exclude`): the review's findings being fixed, and
/// the ones this fuzzer found.
pub const KNOWN_AREAS: &[&str] =
    &["session_user", "now", "record", "table_to_xml", "temp_child", "explain_ctas"];
pub const AREAS: &[&str] = &[
    "session_user",
    "now",
    "record",
    "table_to_xml",
    "temp_child",
    "explain_ctas",
    "null_equals",
    "array_nulls",
    "temp_function",
    "temp_regclass",
];

pub fn excluded(exclude: &[String], area: &str) -> bool {
    exclude.iter().any(|e| e == area)
}

fn sql(text: impl Into<String>) -> Step {
    Step::Sql { sql: text.into(), kind: Kind::Other }
}

/// Tables written to (also directly to partitions and children, and through a view).
const WRITE_TARGETS: &[&str] = &[
    "t0", "t0", "t1", "t1", "t2", "pl", "pl", "pl_a", "pl_b", "pl_b2", "pl_def", "pr", "pr",
    "pr_1", "pr_2", "h", "h", "h_c1", "h_c2", "r", "v_t0", "sh", "s2.sh", "t3", "kp", "kc",
];

fn value_row(rng: &mut StdRng) -> String {
    let k: i32 = rng.gen_range(0..200);
    let v = if rng.gen_bool(0.1) { "NULL".to_string() } else { format!("'ins{k}'") };
    format!(
        "({}, {}, {v}, {}, {k} / 3.0, timestamptz '2024-01-01 00:00+00' + {k} * interval '7 hours')",
        rng.gen_range(0..100),
        rng.gen_range(0..6),
        f64::from(k) * 0.5
    )
}

pub fn write(rng: &mut StdRng, temp_targets: &[&'static str]) -> Step {
    let table = if !temp_targets.is_empty() && rng.gen_bool(0.3) {
        *temp_targets.choose(rng).unwrap()
    } else {
        *WRITE_TARGETS.choose(rng).unwrap()
    };
    let c = rng.gen_range(0..6);
    let k = rng.gen_range(0..100);
    match rng.gen_range(0..100) {
        0..=24 => {
            let rows: Vec<String> = (0..rng.gen_range(1..4)).map(|_| value_row(rng)).collect();
            sql(format!("INSERT INTO {table} ({INSERT_COLUMNS}) VALUES {}", rows.join(", ")))
        }
        25..=31 => {
            let from = *WRITE_TARGETS.choose(rng).unwrap();
            sql(format!(
                "INSERT INTO {table} ({INSERT_COLUMNS}) SELECT id + 1, g, v || '+', n, f, ts FROM {from} WHERE g = {c} ORDER BY id, v LIMIT 3"
            ))
        }
        32..=43 => sql(format!("UPDATE {table} SET v = 'u{k}', n = n + 1 WHERE g = {c}")),
        44..=49 => sql(format!("UPDATE {table} SET g = {} WHERE id = {k}", rng.gen_range(0..6))),
        50..=51 => sql(format!("UPDATE {table} SET ts = ts + interval '1 day', f = f * 2 WHERE id % 5 = {}", c % 5)),
        // A prepared statement's writes.
        52..=53 => sql(format!(
            "DEALLOCATE ALL; PREPARE fz_w(int) AS UPDATE {table} SET v = 'p' || $1 WHERE id = $1; EXECUTE fz_w({k})"
        )),
        54..=67 => sql(format!("DELETE FROM {table} WHERE id = {k} OR id = {}", k / 2)),
        68..=79 => sql(format!("DELETE FROM {table} WHERE g = {c} AND id % 3 = {}", k % 3)),
        80..=85 => sql(format!("DELETE FROM {table} WHERE id > {}", 40 + k / 2)),
        86..=93 => {
            let mut data = String::new();
            for _ in 0..rng.gen_range(1..5) {
                let k: i32 = rng.gen_range(0..200);
                let v = if rng.gen_bool(0.1) { "\\N".to_string() } else { format!("cp{k}") };
                data.push_str(&format!(
                    "{}\t{}\t{v}\t{}\t{}\t2024-01-0{} 0{}:00:00+00\n",
                    rng.gen_range(0..100),
                    rng.gen_range(0..6),
                    k,
                    f64::from(k) / 8.0,
                    rng.gen_range(1..10),
                    rng.gen_range(0..10)
                ));
            }
            Step::Copy { sql: format!("COPY {table} ({INSERT_COLUMNS}) FROM STDIN"), data }
        }
        94..=95 => sql(format!("TRUNCATE {table}")),
        96 => sql(format!("REFRESH MATERIALIZED VIEW {}mv", ["", "CONCURRENTLY "][c % 2])),
        // Writes of other kinds: a data-modifying CTE, a procedure that commits inside CALL,
        // and foreign-key cascades.
        97 => sql(format!(
            "WITH d AS (DELETE FROM {table} WHERE id = {k} RETURNING {INSERT_COLUMNS}) INSERT INTO t2 ({INSERT_COLUMNS}) SELECT * FROM d"
        )),
        98 => sql(format!("CALL fz_proc({k})")),
        _ => sql(format!("UPDATE kp SET id = id + {} WHERE id = {k}", [100, -100][c % 2])),
    }
}

/// Schema changes (run by the superuser session).
pub fn ddl(rng: &mut StdRng, roles: &Roles, exclude: &[String]) -> Step {
    let c = rng.gen_range(0..6);
    let app = &roles.group;
    let user = roles.users.choose(rng).unwrap();
    let choices = if excluded(exclude, "explain_ctas") { 29 } else { 30 };
    let text = match rng.gen_range(0..choices) {
        0 => format!("CREATE OR REPLACE VIEW v_t0 AS SELECT id, g, v, n, f, ts, gen FROM t0 WHERE g < {}", c + 1),
        1 => format!("CREATE OR REPLACE VIEW vv AS SELECT id, g, v, n, f, ts, gen FROM v_t0 WHERE id % 2 = {}", c % 2),
        2 => "DROP VIEW IF EXISTS vv".into(),
        3 => "CREATE TABLE IF NOT EXISTS s1.sh (LIKE public.t0 INCLUDING GENERATED)".into(),
        4 => "CREATE TABLE s1.sh AS SELECT id, g, v, n, f, ts, gen FROM public.t1 WHERE g > 2".into(),
        5 => "DROP TABLE IF EXISTS s1.sh".into(),
        6 => "ALTER TABLE pl DETACH PARTITION pl_b".into(),
        7 => "ALTER TABLE pl ATTACH PARTITION pl_b FOR VALUES IN (2, 3)".into(),
        8 => "ALTER TABLE pr DETACH PARTITION pr_2".into(),
        9 => "ALTER TABLE pr ATTACH PARTITION pr_2 FOR VALUES FROM (40) TO (80)".into(),
        10 => "ALTER TABLE h_c1 NO INHERIT h".into(),
        11 => "ALTER TABLE h_c1 INHERIT h".into(),
        12 => format!("ALTER TABLE t1 {} ROW LEVEL SECURITY", if c < 2 { "ENABLE" } else { "DISABLE" }),
        13 => "ALTER TABLE t1 DISABLE ROW LEVEL SECURITY".into(),
        14 => format!("DROP POLICY IF EXISTS t1_pol ON t1; CREATE POLICY t1_pol ON t1 USING (g <> {c})"),
        15 if c == 0 => format!("REVOKE SELECT ON {} FROM {app}", ["t0", "v_t0", "pl", "h"][rng.gen_range(0..4)]),
        15 | 16 => format!("GRANT SELECT ON t0, v_t0, pl, h TO {app}"),
        17 => format!("ALTER TABLE {} ADD COLUMN IF NOT EXISTS x{c} int DEFAULT {c}", ["t0", "pl", "h", "t2"][c % 4]),
        18 => format!("ALTER TABLE {} DROP COLUMN IF EXISTS x{c}", ["t0", "pl", "h", "t2"][c % 4]),
        19 => format!("CREATE OR REPLACE FUNCTION fz_imm(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 * {}'", c + 1),
        20 => "CREATE INDEX IF NOT EXISTS t0_g ON t0 (g)".into(),
        21 => "DROP INDEX IF EXISTS t0_g".into(),
        22 => format!("ALTER VIEW v_sb SET (security_barrier = {})", c % 2 == 0),
        // Revoked privileges come back five times as often as they go, so runs do not spend
        // most reads on permission errors.
        23 if c == 0 => format!("REVOKE {app} FROM {user}"),
        23 => format!("GRANT {app} TO {}", roles.users.join(", ")),
        24 => format!("ALTER TABLE t2 ALTER COLUMN n TYPE numeric(12, {})", c % 3 + 1),
        25 => format!("ALTER TABLE s2.sh RENAME COLUMN {}", ["v TO w", "w TO v"][c % 2]),
        // Column privileges, and two tables trading names.
        26 => format!("REVOKE SELECT ON t2 FROM {app}; GRANT SELECT (id, g, v) ON t2 TO {app}"),
        27 => format!("GRANT SELECT ON t2 TO {app}"),
        28 => "ALTER TABLE t2 RENAME TO t2_swap; ALTER TABLE h_c2 RENAME TO t2; ALTER TABLE t2_swap RENAME TO h_c2".into(),
        // Review finding 10 (being fixed).
        _ => "EXPLAIN ANALYZE CREATE TABLE s1.sh AS SELECT id, g, v, n, f, ts, gen FROM s2.sh".into(),
    };
    sql(text)
}

/// Session settings (plain or LOCAL) and roles.
pub fn setting(rng: &mut StdRng, roles: &Roles, superuser: bool, exclude: &[String]) -> Step {
    let scope = if rng.gen_bool(0.2) { "LOCAL " } else { "" };
    // Settings are part of the key: they are reset about as often as they are set, so that
    // sessions keep coming back to the same keys.
    if rng.gen_bool(0.4) {
        return sql(*[
            "RESET ALL",
            "RESET search_path",
            "RESET TimeZone",
            "RESET DateStyle",
            "RESET ROLE",
            "RESET extra_float_digits",
        ]
        .choose(rng)
        .unwrap());
    }
    let text = match rng.gen_range(0..17) {
        0 | 1 => format!(
            "SET {scope}search_path TO {}",
            ["public", "s1, s2, public", "s2, s1, public", "s1, public"].choose(rng).unwrap()
        ),
        2 => format!(
            "SET {scope}TimeZone TO '{}'",
            ["UTC", "America/New_York", "Asia/Kolkata"].choose(rng).unwrap()
        ),
        3 => format!(
            "SET {scope}DateStyle TO '{}'",
            ["ISO, MDY", "SQL, DMY", "German", "Postgres, MDY"].choose(rng).unwrap()
        ),
        4 => format!(
            "SET {scope}IntervalStyle TO {}",
            ["postgres", "iso_8601", "sql_standard"].choose(rng).unwrap()
        ),
        5 => format!(
            "SET {scope}extra_float_digits TO {}",
            ["0", "1", "3", "-3"].choose(rng).unwrap()
        ),
        6 => format!("SET {scope}app.tenant TO '{}'", ["a", "b"].choose(rng).unwrap()),
        7 => "RESET app.tenant".into(),
        8 if !excluded(exclude, "null_equals") => {
            format!("SET {scope}transform_null_equals TO {}", ["on", "off"].choose(rng).unwrap())
        }
        8 => "RESET transform_null_equals".into(),
        14 if !excluded(exclude, "array_nulls") => {
            format!("SET {scope}array_nulls TO {}", ["on", "off"].choose(rng).unwrap())
        }
        14 => "RESET array_nulls".into(),
        9 | 10 => {
            let mut targets = vec![roles.group.clone(), "NONE".into()];
            if superuser {
                targets.extend(roles.users.iter().cloned());
            }
            format!("SET {scope}ROLE {}", targets.choose(rng).unwrap())
        }
        15 if superuser => {
            format!("SET SESSION AUTHORIZATION {}", roles.users.choose(rng).unwrap())
        }
        15 => "RESET ROLE".into(),
        16 => "RESET SESSION AUTHORIZATION".into(),
        11 => format!("SET {scope}enable_seqscan TO {}", ["on", "off"].choose(rng).unwrap()),
        12 => format!(
            "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL {}",
            ["READ COMMITTED", "READ COMMITTED", "READ COMMITTED", "REPEATABLE READ"]
                .choose(rng)
                .unwrap()
        ),
        _ => "RESET ALL".into(),
    };
    sql(text)
}

pub fn begin(rng: &mut StdRng) -> Step {
    let level = [
        "",
        "",
        "",
        "",
        " ISOLATION LEVEL READ COMMITTED",
        " ISOLATION LEVEL REPEATABLE READ",
        " ISOLATION LEVEL SERIALIZABLE",
    ]
    .choose(rng)
    .unwrap();
    let read_only = if rng.gen_bool(0.05) { " READ ONLY" } else { "" };
    Step::Sql { sql: format!("BEGIN{level}{read_only}"), kind: Kind::Begin }
}

pub fn end(rng: &mut StdRng) -> Step {
    let commit = rng.gen_bool(0.7);
    Step::Sql { sql: if commit { "COMMIT" } else { "ROLLBACK" }.into(), kind: Kind::End }
}

/// Temporary objects: a table shadowing `t0`, a view shadowing `v_t0`, a function of the
/// session's own (`pg_temp.fz_t`), and a temporary child of `h`.
pub fn temp(rng: &mut StdRng, exclude: &[String]) -> Step {
    let k = rng.gen_range(1..5);
    let mut choices = vec![
        "CREATE TEMP TABLE IF NOT EXISTS t0 (id int, g int, v text, n numeric, f float8, ts timestamptz, gen int)".to_string(),
        "DROP TABLE IF EXISTS pg_temp.t0".into(),
        "CREATE OR REPLACE TEMP VIEW v_t0 AS SELECT id, g, v, n, f, ts, gen FROM t1".into(),
        "DROP VIEW IF EXISTS pg_temp.v_t0".into(),
    ];
    if !excluded(exclude, "temp_function") {
        choices.push(format!("CREATE OR REPLACE FUNCTION pg_temp.fz_t(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 + {k}'"));
    }
    if !excluded(exclude, "temp_child") {
        choices.push("CREATE TEMP TABLE IF NOT EXISTS fz_tc () INHERITS (h)".into());
        choices.push("DROP TABLE IF EXISTS pg_temp.fz_tc".into());
    }
    let text = choices.swap_remove(rng.gen_range(0..choices.len()));
    sql(text)
}
