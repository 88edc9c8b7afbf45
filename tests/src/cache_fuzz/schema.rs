//! The fuzzed database: roles, the schema (plain, partitioned and inherited tables, views,
//! a materialized view, row-level security, triggers, generated columns) and the pool of
//! queries read through `pitstop.cached`. Everything but the query pool is fixed; the pool
//! is drawn from the seed.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

/// The login roles and the group role they share, named after the run's database so runs on
/// one cluster do not share roles.
#[derive(Clone)]
pub struct Roles {
    pub group: String,
    pub users: [String; 3],
}

impl Roles {
    pub fn for_database(db: &str) -> Roles {
        Roles { group: format!("{db}_app"), users: [1, 2, 3].map(|i| format!("{db}_u{i}")) }
    }

    /// Cluster-level setup, run as a superuser in any database.
    pub fn create_sql(&self) -> String {
        let mut sql = format!("CREATE ROLE {} NOLOGIN;\n", self.group);
        for user in &self.users {
            sql.push_str(&format!("CREATE ROLE {user} LOGIN IN ROLE {};\n", self.group));
        }
        sql
    }

    pub fn drop_sql(&self) -> String {
        let mut sql = String::new();
        for role in self.users.iter().chain([&self.group]) {
            sql.push_str(&format!("DROP ROLE IF EXISTS {role};\n"));
        }
        sql
    }
}

/// The columns every data relation has (generated `gen` last).
pub const COLUMNS: &str = "id int, g int, v text, n numeric, f float8, ts timestamptz, \
                           gen int GENERATED ALWAYS AS (g * 10 + 1) STORED";
pub const INSERT_COLUMNS: &str = "id, g, v, n, f, ts";

/// Schema setup in the fuzz database, run as the superuser that owns everything.
pub fn setup_sql(roles: &Roles) -> String {
    let app = &roles.group;
    let [u1, u2, u3] = &roles.users;
    let seed_rows = |table: &str, count: i32| {
        format!(
            "INSERT INTO {table} ({INSERT_COLUMNS}) SELECT i, i % 6, CASE WHEN i % 11 = 0 THEN NULL ELSE 'v' || i END, \
             i * 1.5, i / 7.0, timestamptz '2024-01-01 00:00+00' + i * interval '5 hours' FROM generate_series(1, {count}) i;\n"
        )
    };
    let mut sql = format!(
        r#"
CREATE EXTENSION IF NOT EXISTS pitstop;
CREATE SCHEMA s1; CREATE SCHEMA s2;
GRANT USAGE ON SCHEMA s1, s2 TO {app};
-- pitstop itself to each login role too: a revoked membership must not hide pitstop.cached.
GRANT USAGE ON SCHEMA pitstop TO {app}, {u1}, {u2}, {u3};
ALTER DEFAULT PRIVILEGES GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLES TO {app};
CREATE FUNCTION fz_imm(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 2';
CREATE FUNCTION fz_stable(int) RETURNS int LANGUAGE sql STABLE AS 'SELECT $1 + 1';
CREATE TABLE t0 ({COLUMNS});
CREATE TABLE t1 ({COLUMNS});
CREATE TABLE t2 ({COLUMNS});
CREATE FUNCTION fz_audit() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO public.t2 ({INSERT_COLUMNS}) VALUES (OLD.id, OLD.g, 'del', OLD.n, OLD.f, OLD.ts);
  ELSE
    INSERT INTO public.t2 ({INSERT_COLUMNS}) VALUES (NEW.id, NEW.g, lower(TG_OP), NEW.n, NEW.f, NEW.ts);
  END IF;
  RETURN NULL;
END $f$;
CREATE TRIGGER t1_audit AFTER INSERT OR UPDATE OR DELETE ON t1 FOR EACH ROW EXECUTE FUNCTION fz_audit();
CREATE TABLE pl ({COLUMNS}) PARTITION BY LIST (g);
CREATE TABLE pl_a PARTITION OF pl FOR VALUES IN (0, 1);
CREATE TABLE pl_b PARTITION OF pl FOR VALUES IN (2, 3) PARTITION BY RANGE (id);
CREATE TABLE pl_b1 PARTITION OF pl_b FOR VALUES FROM (MINVALUE) TO (50);
CREATE TABLE pl_b2 PARTITION OF pl_b FOR VALUES FROM (50) TO (MAXVALUE);
CREATE TABLE pl_def PARTITION OF pl DEFAULT;
CREATE TABLE pr ({COLUMNS}) PARTITION BY RANGE (id);
CREATE TABLE pr_1 PARTITION OF pr FOR VALUES FROM (MINVALUE) TO (40);
CREATE TABLE pr_2 PARTITION OF pr FOR VALUES FROM (40) TO (80);
CREATE TABLE pr_def PARTITION OF pr DEFAULT;
CREATE FUNCTION fz_bump() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN NEW.n := coalesce(NEW.n, 0) + 1000; RETURN NEW; END $f$;
CREATE TRIGGER pr_bump BEFORE INSERT ON pr FOR EACH ROW EXECUTE FUNCTION fz_bump();
CREATE TABLE h ({COLUMNS});
CREATE TABLE h_c1 () INHERITS (h);
CREATE TABLE h_c2 (extra int DEFAULT 7) INHERITS (h);
CREATE TABLE s2.sh ({COLUMNS});
CREATE TABLE r ({COLUMNS}, owner name DEFAULT current_user, tenant text DEFAULT current_setting('app.tenant', true));
ALTER TABLE r ENABLE ROW LEVEL SECURITY;
CREATE POLICY r_owner ON r USING (owner = current_user);
CREATE POLICY r_tenant ON r USING (tenant = current_setting('app.tenant', true));
CREATE POLICY t1_pol ON t1 USING (g <> 0);
CREATE VIEW v_t0 AS SELECT id, g, v, n, f, ts, gen FROM t0 WHERE g < 3;
CREATE VIEW vv AS SELECT id, g, v, n, f, ts, gen FROM v_t0 WHERE id % 2 = 0;
CREATE VIEW v_sb WITH (security_barrier) AS SELECT id, g, v, n, f, ts, gen FROM t1 WHERE g <> 1;
-- Views over the row-level-security table: one owned by the group role (policies apply as
-- it, with the session's app.tenant), one security_invoker.
CREATE VIEW v_r AS SELECT id, g, v, n, f, ts, gen FROM r;
ALTER VIEW v_r OWNER TO {app};
CREATE VIEW v_ri WITH (security_invoker = true) AS SELECT id, g, v, n, f, ts, gen FROM r;
-- A rule: rows inserted into t3 are also inserted into t0.
CREATE TABLE t3 ({COLUMNS});
CREATE RULE t3_also_t0 AS ON INSERT TO t3 DO ALSO INSERT INTO public.t0 ({INSERT_COLUMNS}) VALUES (NEW.id + 1000, NEW.g, NEW.v, NEW.n, NEW.f, NEW.ts);
-- Foreign keys whose cascades write kc.
CREATE TABLE kp ({COLUMNS}, PRIMARY KEY (id));
CREATE TABLE kc ({COLUMNS}, pid int REFERENCES kp (id) ON DELETE CASCADE ON UPDATE CASCADE);
-- A procedure that commits and rolls back inside CALL.
CREATE PROCEDURE fz_proc(k int) LANGUAGE plpgsql AS $f$
BEGIN
  INSERT INTO public.t0 ({INSERT_COLUMNS}) VALUES (k, k % 6, 'proc' || k, k, k, timestamptz '2024-01-05 00:00+00');
  COMMIT;
  DELETE FROM public.t1 WHERE id = k;
  ROLLBACK;
  UPDATE public.pl SET v = 'proc' || k WHERE id = k;
  COMMIT;
END $f$;
"#
    );
    for table in ["t0", "t1", "t2", "t3", "pl", "pr", "h", "h_c1", "h_c2", "s2.sh", "kp"] {
        sql.push_str(&seed_rows(table, 30));
    }
    sql.push_str(&format!(
        "INSERT INTO r ({INSERT_COLUMNS}, owner, tenant) SELECT i, i % 6, 'r' || i, i, i / 3.0, \
         timestamptz '2024-01-01 00:00+00' + i * interval '1 day', (ARRAY['{u1}', '{u2}', '{u3}', '{app}'])[i % 4 + 1], \
         (ARRAY['a', 'b', NULL])[i % 3 + 1] FROM generate_series(1, 24) i;\n\
         CREATE MATERIALIZED VIEW mv AS SELECT g, count(*)::bigint AS c, coalesce(sum(id), 0)::bigint AS s FROM t1 GROUP BY g;\n\
         CREATE UNIQUE INDEX mv_g ON mv (g);\n\
         GRANT SELECT ON mv TO {app};\n\
         INSERT INTO kc ({INSERT_COLUMNS}, pid) SELECT i, i % 6, 'c' || i, i, i, timestamptz '2024-01-01 00:00+00', i % 30 + 1 FROM generate_series(1, 40) i;\n"
    ));
    sql
}

/// How a query is read: its text (with `$n` parameters), the column list, where its
/// parameters come from, and whether its result depends on the transaction (read only in
/// one transaction with the plain run).
#[derive(Clone, Debug)]
pub struct Query {
    pub text: String,
    pub coldef: &'static str,
    pub params: Vec<&'static [&'static str]>,
    pub ordered: bool,
    pub same_transaction: bool,
    /// The defect area the query's template probes (see `AREAS`), if it is one.
    pub area: Option<&'static str>,
}

/// Relations with the common columns, for reading; weighted by repetition.
const READ_RELATIONS: &[&str] = &[
    "t0", "t0", "t0", "t1", "t1", "t1", "t2", "t2", "pl", "pl", "pl_a", "pl_b", "pl_b1", "pl_def",
    "pr", "pr", "pr_2", "h", "h", "h_c1", "h_c2", "ONLY h", "v_t0", "v_t0", "vv", "v_sb", "r",
    "sh", "s2.sh", "s2.sh", "v_r", "v_ri", "t3", "kp", "kc",
];

const SMALL: &[&str] = &["0", "1", "2", "3", "4", "5"];
const IDS: &[&str] = &["1", "3", "7", "12", "20", "33", "45", "60"];
const LIKES: &[&str] = &["v1%", "%2", "ins%", "u%", "%"];
const TIMES: &[&str] = &["2024-01-02", "01/03/2024", "2024-01-04 12:00+05", "2024-01-02 06:00"];

fn q(text: String, coldef: &'static str, params: Vec<&'static [&'static str]>) -> Query {
    let ordered = text.contains("ORDER BY") && !text.contains("array_agg(id ORDER BY id)");
    Query { text, coldef, params, ordered, same_transaction: false, area: None }
}

/// Relations of the hot set's queries: no row-level security, no search_path lookups.
const HOT_RELATIONS: &[&str] =
    &["t0", "t1", "t2", "pl", "pl_a", "pr", "h", "h_c2", "v_t0", "vv", "s2.sh", "kc"];

/// One query drawn from the templates; a `hot` one is one the cache may serve (no RLS, no
/// user-defined STABLE function, no known defect).
fn draw(rng: &mut StdRng, hot: bool) -> Query {
    let relations = if hot { HOT_RELATIONS } else { READ_RELATIONS };
    let rel = *relations.choose(rng).unwrap();
    let rel2 = *relations.choose(rng).unwrap();
    let c = rng.gen_range(0..6);
    let templates = if hot { 26 } else { 35 };
    let mut template = rng.gen_range(0..templates);
    if hot && template == 17 {
        template = 16;
    }
    match template {
        0 | 1 => q(format!("SELECT id::int, g::int, v::text FROM {rel} WHERE g = {c}"), "id int, g int, v text", vec![]),
        2 => q(format!("SELECT g::int, count(*)::bigint, sum(n)::numeric FROM {rel} GROUP BY g"), "g int, c bigint, s numeric", vec![]),
        3 | 4 => q(
            format!("SELECT count(*)::bigint, coalesce(sum(id), 0)::bigint, max(v)::text FROM {rel}"),
            "c bigint, s bigint, m text",
            vec![],
        ),
        5 | 6 => q(format!("SELECT id::int, n::numeric FROM {rel} WHERE id = $1::int"), "id int, n numeric", vec![IDS]),
        7 => q(
            format!("SELECT id::int, v::text FROM {rel} WHERE g = $1::int AND id > $2::int"),
            "id int, v text",
            vec![SMALL, IDS],
        ),
        8 => q(format!("SELECT id::int, f::float8 FROM {rel} WHERE g = {c}"), "id int, f float8", vec![]),
        9 => q(format!("SELECT id::int, ts::timestamptz FROM {rel} WHERE id < {}", c * 10 + 5), "id int, ts timestamptz", vec![]),
        10 => q(
            format!(
                "SELECT id::int, ts::date::text, (ts - timestamptz '2024-01-01 00:00+00')::interval FROM {rel} WHERE g = $1::int"
            ),
            "id int, d text, i interval",
            vec![SMALL],
        ),
        11 => q(
            format!("SELECT a.id::int, b.v::text FROM {rel} a JOIN {rel2} b ON a.id = b.id ORDER BY 1, 2 LIMIT {}", c + 3),
            "id int, v text",
            vec![],
        ),
        12 => q(format!("SELECT gen::int, count(*)::bigint FROM {rel} GROUP BY gen"), "gen int, c bigint", vec![]),
        13 => Query {
            area: Some("null_equals"),
            ..q(format!("SELECT count(*)::bigint FROM {rel} WHERE v = NULL"), "c bigint", vec![])
        },
        14 => q(
            format!("SELECT id::int FROM {rel} WHERE id IN (SELECT id FROM {rel2} WHERE g = $1::int)"),
            "id int",
            vec![SMALL],
        ),
        15 => q(format!("SELECT tableoid::regclass::text, count(*)::bigint FROM {rel} GROUP BY 1"), "rel text, c bigint", vec![]),
        16 => q(format!("SELECT id::int, fz_imm(g)::int FROM {rel} WHERE g = {c}"), "id int, x int", vec![]),
        17 => q(format!("SELECT id::int, fz_stable(g)::int FROM {rel} WHERE id < 10"), "id int, x int", vec![]),
        18 => q(format!("SELECT current_user::text, count(*)::bigint FROM {rel}"), "u text, c bigint", vec![]),
        19 => q("SELECT g::int, c::bigint, s::bigint FROM mv ORDER BY 1, 2, 3".into(), "g int, c bigint, s bigint", vec![]),
        20 => q(format!("SELECT array_agg(id ORDER BY id)::int[] FROM {rel} WHERE g = $1::int"), "a int[]", vec![SMALL]),
        21 => q(format!("SELECT id::int, v::text FROM {rel} WHERE v LIKE $1::text"), "id int, v text", vec![LIKES]),
        22 => q(format!("SELECT count(*)::bigint FROM {rel} WHERE ts > $1::timestamptz"), "c bigint", vec![TIMES]),
        23 => q(format!("SELECT id::int, g::int FROM {rel} WHERE g <= {c} ORDER BY id, g"), "id int, g int", vec![]),
        24 => q(
            format!(
                "WITH x AS (SELECT g, count(*) AS c FROM {rel} GROUP BY g) SELECT g::int, c::bigint FROM x WHERE c > {c}"
            ),
            "g int, c bigint",
            vec![],
        ),
        25 => q(
            format!("SELECT v::text FROM {rel} WHERE id = {} UNION SELECT v FROM {rel2} WHERE id = {}", c * 7, c * 5),
            "v text",
            vec![],
        ),
        // Defect areas of the review (findings 5, 6, 2 and 3d, being fixed; array_nulls is a
        // note of it).
        26 => Query { area: Some("session_user"), ..q(format!("SELECT session_user::text, count(*)::bigint FROM {rel}"), "u text, c bigint", vec![]) },
        27 => Query {
            area: Some("now"),
            same_transaction: true,
            ..q(format!("SELECT 'now'::timestamptz::text, count(*)::bigint FROM {rel}"), "t text, c bigint", vec![])
        },
        28 => Query { area: Some("record"), ..q(format!("SELECT ROW(id, v) FROM {rel} WHERE g = {c}"), "r record", vec![]) },
        30 => Query {
            area: Some("array_nulls"),
            ..q(format!("SELECT ('{{v1,NULL}}'::text[])[2]::text, count(*)::bigint FROM {rel}"), "x text, c bigint", vec![])
        },
        31 => q("SELECT pid::int, count(*)::bigint FROM kc GROUP BY pid".into(), "pid int, c bigint", vec![]),
        32 => q(format!("SELECT id::int, v::text FROM {} WHERE g = $1::int", ["v_r", "v_ri"][c % 2]), "id int, v text", vec![SMALL]),
        // Each session may define its own pg_temp.fz_t (steps::temp).
        // A constant naming a relation that a session's temporary one may shadow.
        34 => Query {
            area: Some("temp_regclass"),
            ..q(
                format!("SELECT '{}'::regclass::oid::bigint, count(*)::bigint FROM {rel}", ["t0", "v_t0"][c % 2]),
                "o bigint, c bigint",
                vec![],
            )
        },
        33 => Query {
            area: Some("temp_function"),
            ..q(format!("SELECT id::int, pg_temp.fz_t(g)::int FROM {rel} WHERE g = {c}"), "id int, x int", vec![])
        },
        _ => Query {
            area: Some("table_to_xml"),
            ..q("SELECT table_to_xml('r', true, false, '')::text".into(), "x text", vec![])
        },
    }
}

/// The pool of `size` queries reads draw from; the first `hot` are the hot set, whose last
/// entry probes a defect area (so that short runs read such a query often). Templates of an
/// excluded area are drawn again.
pub fn query_pool(rng: &mut StdRng, size: usize, hot: usize, exclude: &[String]) -> Vec<Query> {
    let allowed = |query: &Query| !query.area.is_some_and(|a| exclude.iter().any(|e| e == a));
    (0..size)
        .map(|i| {
            if i + 1 == hot {
                // Give up after a while when every area is excluded.
                for _ in 0..1000 {
                    let query = draw(rng, false);
                    if query.area.is_some() && allowed(&query) {
                        return query;
                    }
                }
            }
            loop {
                let query = draw(rng, i < hot);
                if allowed(&query) {
                    break query;
                }
            }
        })
        .collect()
}
