//! `pitstop report indexes --curve` and the budget: the curve is the list's prefixes (bytes
//! against the workload's estimated cost), the same numbers as the list itself; a budgeted list
//! stays inside the budget; every suggested DDL builds.

use pitstop_tests::query::first_column;
use pitstop_tests::PgCluster;

const SETUP: &str = "CREATE TABLE orders(id int, customer int, status text, placed date, total numeric);
    INSERT INTO orders SELECT g, g % 20000, (ARRAY['new', 'paid', 'sent', 'done'])[1 + g % 4],
                              date '2020-01-01' + g % 1500, g % 997
      FROM generate_series(1, 200000) g;
    CREATE TABLE customers(id int, email text, region int);
    INSERT INTO customers SELECT g, 'c' || g || '@example.com', g % 50 FROM generate_series(1, 20000) g;
    ANALYZE orders; ANALYZE customers;";

fn workload() -> Vec<&'static str> {
    vec![
        "SELECT * FROM orders WHERE customer = 42",
        "SELECT id, total FROM orders WHERE placed BETWEEN '2021-03-01' AND '2021-03-03'",
        "SELECT * FROM customers WHERE email = 'c7@example.com'",
        "SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer WHERE c.region = 3 AND o.placed = '2022-01-05'",
    ]
}

fn args<'a>(dsn: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--dsn", dsn, "--json", "report", "indexes"];
    for q in workload() {
        args.extend(["--query", q]);
    }
    args.extend(extra);
    args
}

fn rows(out: &str) -> Vec<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(out)
        .unwrap_or_else(|e| panic!("{e}: {out}"))
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn the_curve_is_the_lists_prefixes_and_every_ddl_builds() {
    let (cluster, mut c) = PgCluster::with_extension(SETUP);
    let dsn = cluster.dsn();
    let (code, out, err) = pitstop_tests::pitstop(&args(&dsn, &[]));
    assert_eq!(code, 0, "{err}");
    let list = rows(&out);
    assert!(!list.is_empty(), "{out}");

    let (code, out, err) = pitstop_tests::pitstop(&args(&dsn, &["--curve"]));
    assert_eq!(code, 0, "{err}");
    let curve = rows(&out);
    assert_eq!(curve.len(), list.len() + 1, "the empty list, then one point per index: {out}");
    assert_eq!(curve[0]["indexes"].as_i64(), Some(0));
    assert_eq!(curve[0]["pct_of_start"].as_f64(), Some(100.0));
    let number = |v: &serde_json::Value| {
        v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).unwrap()
    };
    for pair in curve.windows(2) {
        assert!(number(&pair[1]["bytes"]) > number(&pair[0]["bytes"]), "{out}");
        assert!(
            number(&pair[1]["est_workload_cost"]) < number(&pair[0]["est_workload_cost"]),
            "{out}"
        );
    }
    // The last point is where the list ends.
    let ddls: Vec<String> = list.iter().map(|r| r["ddl"].as_str().unwrap().to_string()).collect();
    assert_eq!(curve.last().unwrap()["added"].as_str(), ddls.last().map(String::as_str));
    let listed: Vec<f64> = first_column(
        &mut c,
        "SELECT workload_cost_after FROM pitstop.suggest_indexes($1) ORDER BY rank",
        &[&workload()],
    );
    assert_eq!(
        number(&curve.last().unwrap()["est_workload_cost"]),
        *listed.last().unwrap(),
        "{out}"
    );

    // A budget of half the list's bytes: the advice stays inside it.
    let total: f64 = number(&curve.last().unwrap()["bytes"]);
    let budget_mb = format!("{}", total / 2.0 / 1048576.0);
    let (code, out, err) =
        pitstop_tests::pitstop(&args(&dsn, &["--curve", "--budget-mb", &budget_mb]));
    assert_eq!(code, 0, "{err}");
    let budgeted = rows(&out);
    if let Some(last) = budgeted.last() {
        assert!(number(&last["bytes"]) <= total / 2.0, "{out}");
    }

    for ddl in ddls.iter().chain(
        budgeted
            .iter()
            .filter_map(|r| r["added"].as_str().map(str::to_string))
            .collect::<Vec<_>>()
            .iter(),
    ) {
        c.batch_execute(ddl).unwrap_or_else(|e| panic!("{ddl}: {e}"));
    }
}
