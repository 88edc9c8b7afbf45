//! Differential fuzzing of `pitstop.cached` against plain execution.
//!
//! Several sessions (one connection each, driven from one thread, one step at a time) run
//! seeded random steps over a random-ish schema: writes, DDL, settings, roles, transactions
//! and reads through the cache. After every cached read the same session runs the same query
//! plainly in the same transaction, before any other step; the two answers (rows, or the
//! error's SQLSTATE) must be equal. Same seed, same statements.

mod schema;
mod steps;

use postgres::{Client, NoTls, SimpleQueryMessage};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use schema::{Query, Roles};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::Write as _;
use std::str::FromStr;
use std::time::{Duration, Instant};
use steps::{Kind, Step};

pub use schema::setup_sql;
pub use steps::{AREAS, KNOWN_AREAS};

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    pub seed: u64,
    /// Steps in total over all sessions (a read and its plain twin count as one).
    pub statements: u64,
    pub sessions: usize,
    /// A superuser connection string (its database is used to create the run's own).
    pub dsn: String,
    /// Defect areas left out (`steps::AREAS`; `KNOWN_AREAS` are the ones being fixed).
    pub exclude: Vec<String>,
    /// Stop after this many differences (the cache is cleared after each).
    pub max_differences: usize,
    /// Print a progress line every this many steps (0: never).
    pub progress_every: u64,
    pub pool_size: usize,
}

impl Config {
    pub fn new(seed: u64, statements: u64, dsn: String) -> Config {
        Config {
            seed,
            statements,
            sessions: 4,
            dsn,
            exclude: Vec::new(),
            max_differences: 1,
            progress_every: 0,
            pool_size: 150,
        }
    }
}

/// One cached read whose answer differed from the plain one.
#[derive(Clone, Debug)]
pub struct Difference {
    /// The defect area of the query's template, `other` when it has none.
    pub area: String,
    pub report: String,
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub seed: u64,
    pub statements: u64,
    pub cached_reads: u64,
    /// Cached reads that raised an error (the plain run raised the same).
    pub read_errors: u64,
    /// Cached reads answered while the plain run timed out waiting for a lock.
    pub lock_waits_skipped: u64,
    pub hits: i64,
    pub misses: i64,
    pub fills: i64,
    pub bypasses: i64,
    pub bypass_reasons: String,
    pub differences: Vec<Difference>,
    pub elapsed: Duration,
}

impl Summary {
    pub fn hit_percent(&self) -> f64 {
        if self.cached_reads == 0 {
            0.0
        } else {
            self.hits as f64 * 100.0 / self.cached_reads as f64
        }
    }

    /// One line, `key=value` pairs (bench/cache_fuzz.sh reads it).
    pub fn line(&self) -> String {
        format!(
            "seed={} statements={} cached_reads={} read_errors={} lock_waits_skipped={} hits={} hit_pct={:.1} misses={} fills={} bypasses={} differences={} seconds={:.0}",
            self.seed,
            self.statements,
            self.cached_reads,
            self.read_errors,
            self.lock_waits_skipped,
            self.hits,
            self.hit_percent(),
            self.misses,
            self.fills,
            self.bypasses,
            self.differences.len(),
            self.elapsed.as_secs_f64()
        ) + &self.areas()
    }

    /// ` areas=now:3,other:1` (differences by area), or nothing.
    fn areas(&self) -> String {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for d in &self.differences {
            match counts.iter_mut().find(|(a, _)| *a == d.area) {
                Some((_, n)) => *n += 1,
                None => counts.push((d.area.clone(), 1)),
            }
        }
        if counts.is_empty() {
            return String::new();
        }
        format!(
            " areas={}",
            counts.iter().map(|(a, n)| format!("{a}:{n}")).collect::<Vec<_>>().join(",")
        )
    }
}

/// An answer: rows as text, or an error.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Rows(Vec<Vec<Option<String>>>),
    Error { code: String, message: String },
}

impl Outcome {
    fn short(&self) -> String {
        match self {
            Outcome::Rows(rows) => format!("{} rows", rows.len()),
            Outcome::Error { code, message } => format!("ERROR {code}: {message}"),
        }
    }

    fn is_error(&self) -> bool {
        matches!(self, Outcome::Error { .. })
    }

    fn show(&self) -> String {
        match self {
            Outcome::Rows(rows) => {
                let mut s = format!("{} rows", rows.len());
                for row in rows.iter().take(40) {
                    let cells: Vec<&str> =
                        row.iter().map(|c| c.as_deref().unwrap_or("NULL")).collect();
                    let _ = write!(s, "\n      ({})", cells.join(" | "));
                }
                if rows.len() > 40 {
                    s.push_str("\n      …");
                }
                s
            }
            other => other.short(),
        }
    }
}

/// The connection broke (a crashed backend, say): the run cannot go on.
#[derive(Debug)]
pub struct Fatal(pub String);

fn exec(client: &mut Client, sql: &str) -> Result<Outcome, Fatal> {
    match client.simple_query(sql) {
        Ok(messages) => Ok(Outcome::Rows(messages.iter().filter_map(row_values).collect())),
        Err(e) => error_outcome(e, sql),
    }
}

/// A row message's values as text (None for NULL); None for any other message.
fn row_values(m: &SimpleQueryMessage) -> Option<Vec<Option<String>>> {
    match m {
        SimpleQueryMessage::Row(row) => {
            Some((0..row.len()).map(|i| row.get(i).map(str::to_owned)).collect())
        }
        _ => None,
    }
}

/// Several statements in one message: the rows of each, or the first error (and which
/// statement raised it is not known).
fn exec_each(client: &mut Client, sql: &str) -> Result<Result<Vec<Outcome>, Outcome>, Fatal> {
    match client.simple_query(sql) {
        Ok(messages) => {
            let (mut results, mut rows) = (Vec::new(), Vec::new());
            for m in &messages {
                match m {
                    SimpleQueryMessage::CommandComplete(_) => {
                        results.push(Outcome::Rows(std::mem::take(&mut rows)))
                    }
                    _ => rows.extend(row_values(m)),
                }
            }
            Ok(Ok(results))
        }
        Err(e) => Ok(Err(error_outcome(e, sql)?)),
    }
}

fn error_outcome(e: postgres::Error, sql: &str) -> Result<Outcome, Fatal> {
    match e.as_db_error() {
        Some(db) => Ok(Outcome::Error {
            code: db.code().code().to_string(),
            message: db.message().to_string(),
        }),
        None => Err(Fatal(format!("connection error running {sql:?}: {e}"))),
    }
}

/// `COPY … FROM STDIN`; also says whether the connection must be replaced: after a refused
/// COPY (no such table, a view, no privilege, a lock timeout, a bad row) tokio-postgres 0.7
/// can be one reply out of step with the server, and a later request fails.
fn copy_in(client: &mut Client, sql: &str, data: &str) -> Result<(Outcome, bool), Fatal> {
    let refused = |e: postgres::Error| {
        // "unexpected message" (no SQLSTATE) is that same client fault: the connection is
        // replaced either way, which also rolls back its transaction.
        let outcome = error_outcome(e, sql)
            .unwrap_or_else(|Fatal(what)| Outcome::Error { code: "client".into(), message: what });
        Ok((outcome, true))
    };
    let mut writer = match client.copy_in(sql) {
        Ok(writer) => writer,
        Err(e) => return refused(e),
    };
    let _ = writer.write_all(data.as_bytes());
    match writer.finish() {
        Ok(_) => Ok((Outcome::Rows(Vec::new()), false)),
        Err(e) => refused(e),
    }
}

struct Session {
    login: String,
    superuser: bool,
    client: Client,
    in_txn: bool,
    aborted: bool,
    txn_steps: u32,
    savepoints: Vec<String>,
    next_savepoint: u32,
    temp_child: bool,
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The query with its `$n` replaced by the parameter literals (plain execution).
fn substitute(text: &str, params: &[String]) -> String {
    let mut out = text.to_string();
    for (i, p) in params.iter().enumerate().rev() {
        out = out.replace(&format!("${}", i + 1), &quote_literal(p));
    }
    out
}

/// The cached call and its plain twin: rows through `cached`, or (`json`) one jsonb array
/// through `cached_json`, whose plain twin is the same aggregate `cached_json` runs.
fn read_sql(query: &Query, params: &[String], ttl: Option<&str>, json: bool) -> (String, String) {
    let params_sql = if params.is_empty() {
        "NULL".to_string()
    } else {
        format!(
            "ARRAY[{}]::text[]",
            params.iter().map(|p| quote_literal(p)).collect::<Vec<_>>().join(", ")
        )
    };
    let ttl_sql =
        ttl.map(|t| format!("interval {}", quote_literal(t))).unwrap_or_else(|| "NULL".into());
    let plain = substitute(&query.text, params);
    if json {
        (
            format!("SELECT pitstop.cached_json($fz${}$fz$, {params_sql}, {ttl_sql})::text", query.text),
            format!("SELECT coalesce(jsonb_agg(pitstop_row), '[]'::jsonb)::text FROM (\n{plain}\n) AS pitstop_row"),
        )
    } else {
        (
            format!(
                "SELECT * FROM pitstop.cached($fz${}$fz$, {params_sql}, {ttl_sql}) AS t({})",
                query.text, query.coldef
            ),
            plain,
        )
    }
}

/// A jsonb array's elements in a fixed order (for queries without ORDER BY).
fn sorted_json(outcome: &Outcome) -> Outcome {
    let Outcome::Rows(rows) = outcome else { return outcome.clone() };
    let rows = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|cell| {
                    cell.as_ref().map(|text| {
                        match serde_json::from_str::<serde_json::Value>(text) {
                            Ok(serde_json::Value::Array(items)) => {
                                let mut items: Vec<String> =
                                    items.iter().map(|i| i.to_string()).collect();
                                items.sort();
                                items.join("\n")
                            }
                            _ => text.clone(),
                        }
                    })
                })
                .collect()
        })
        .collect();
    Outcome::Rows(rows)
}

/// The run's state.
struct Fuzzer {
    config: Config,
    rng: StdRng,
    roles: Roles,
    pool: Vec<Query>,
    sessions: Vec<Session>,
    monitor: Client,
    db: String,
    /// Prepared transactions not yet committed or rolled back.
    prepared: Vec<String>,
    log: VecDeque<String>,
    summary: Summary,
    step: u64,
}

const LOG_KEEP: usize = 30;
/// How many of the pool's first queries make the hot set.
const HOT: usize = 9;

fn connect(dsn: &str, db: &str, user: &str) -> Result<Client, Fatal> {
    let mut cfg =
        postgres::Config::from_str(dsn).map_err(|e| Fatal(format!("bad dsn {dsn:?}: {e}")))?;
    // A step must never wait for another session's step (one thread drives them all).
    cfg.dbname(db).user(user).options("-c lock_timeout=20 -c statement_timeout=20000");
    cfg.connect(NoTls).map_err(|e| Fatal(format!("connect as {user} to {db}: {e}")))
}

fn stats(monitor: &mut Client) -> Result<(i64, i64, i64, i64, String), Fatal> {
    let row = monitor
        .query_one(
            "SELECT hits, misses, fills, bypasses, bypass_reasons::text FROM pitstop.cache_stats()",
            &[],
        )
        .map_err(|e| Fatal(format!("cache_stats(): {e}")))?;
    Ok((row.get(0), row.get(1), row.get(2), row.get(3), row.get(4)))
}

/// Runs the fuzzer: creates database `fuzz_<seed>` and its roles through `config.dsn`, runs,
/// drops them. Differences are in the summary; `Err` when a connection broke.
pub fn run(config: &Config) -> Result<Summary, Fatal> {
    let started = Instant::now();
    let db = format!("fuzz_{}", config.seed);
    let roles = Roles::for_database(&db);
    let admin_db = postgres::Config::from_str(&config.dsn)
        .ok()
        .and_then(|c| c.get_dbname().map(str::to_owned))
        .unwrap_or_else(|| "postgres".into());
    let admin_user = postgres::Config::from_str(&config.dsn)
        .ok()
        .and_then(|c| c.get_user().map(str::to_owned))
        .unwrap_or_else(|| "postgres".into());
    let mut admin = connect(&config.dsn, &admin_db, &admin_user)?;
    // (CREATE/DROP DATABASE refuse a multi-statement query: each goes alone.)
    let fail = |what: &'static str| move |e: postgres::Error| Fatal(format!("{what}: {e}"));
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .map_err(fail("drop old run"))?;
    admin.batch_execute(&roles.drop_sql()).map_err(fail("drop old roles"))?;
    admin.batch_execute(&format!("CREATE DATABASE {db}")).map_err(fail("create run database"))?;
    admin.batch_execute(&roles.create_sql()).map_err(fail("create roles"))?;
    let mut monitor = connect(&config.dsn, &db, &admin_user)?;
    monitor
        .batch_execute(&schema::setup_sql(&roles))
        .map_err(|e| Fatal(format!("schema setup: {e}")))?;

    let mut rng = StdRng::seed_from_u64(config.seed);
    let pool = schema::query_pool(&mut rng, config.pool_size, HOT, &config.exclude);
    let mut sessions = Vec::new();
    for id in 0..config.sessions.max(1) {
        // Session 0 is the superuser (it runs the DDL); the others alternate two login roles
        // of one group, so some share keys and some differ only by role.
        let (login, superuser) = if id == 0 {
            (admin_user.clone(), true)
        } else {
            (roles.users[(id - 1) % 2].clone(), false)
        };
        let client = connect(&config.dsn, &db, &login)?;
        sessions.push(Session {
            login,
            superuser,
            client,
            in_txn: false,
            aborted: false,
            txn_steps: 0,
            savepoints: Vec::new(),
            next_savepoint: 0,
            temp_child: false,
        });
    }
    let (h0, m0, f0, b0, _) = stats(&mut monitor)?;
    let mut fuzzer = Fuzzer {
        config: config.clone(),
        rng,
        roles: roles.clone(),
        pool,
        sessions,
        monitor,
        db: db.clone(),
        prepared: Vec::new(),
        log: VecDeque::new(),
        summary: Summary { seed: config.seed, ..Summary::default() },
        step: 0,
    };
    let result = fuzzer.run_steps();
    // Prepared transactions would keep the database from being dropped.
    for gid in std::mem::take(&mut fuzzer.prepared) {
        let _ = fuzzer.monitor.batch_execute(&format!("ROLLBACK PREPARED '{gid}'"));
    }
    let (h1, m1, f1, b1, reasons) = stats(&mut fuzzer.monitor)?;
    let mut summary = std::mem::take(&mut fuzzer.summary);
    summary.hits = h1 - h0;
    summary.misses = m1 - m0;
    summary.fills = f1 - f0;
    summary.bypasses = b1 - b0;
    summary.bypass_reasons = reasons;
    summary.elapsed = started.elapsed();
    drop(fuzzer);
    result?;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .map_err(fail("drop run database"))?;
    admin.batch_execute(&roles.drop_sql()).map_err(fail("drop roles"))?;
    Ok(summary)
}

impl Fuzzer {
    fn run_steps(&mut self) -> Result<(), Fatal> {
        while self.step < self.config.statements
            && self.summary.differences.len() < self.config.max_differences
        {
            self.step += 1;
            let s = self.rng.gen_range(0..self.sessions.len());
            let step = self.draw(s);
            if let Err(Fatal(what)) = self.apply(s, step) {
                let mut text = format!(
                    "seed {} step {} session s{s}: {what}\n  last steps:\n",
                    self.config.seed, self.step
                );
                for line in &self.log {
                    let _ = writeln!(text, "    {line}");
                }
                return Err(Fatal(text));
            }
            if self.config.progress_every > 0
                && self.step.is_multiple_of(self.config.progress_every)
            {
                let (hits, ..) = stats(&mut self.monitor)?;
                eprintln!(
                    "seed {} step {}: {} cached reads, {} differences, hits since start (cluster) {hits}",
                    self.config.seed,
                    self.step,
                    self.summary.cached_reads,
                    self.summary.differences.len()
                );
            }
        }
        self.summary.statements = self.step;
        Ok(())
    }

    /// The next step of session `s`.
    fn draw(&mut self, s: usize) -> Step {
        let (in_txn, aborted, superuser, txn_steps) = {
            let session = &self.sessions[s];
            (session.in_txn, session.aborted, session.superuser, session.txn_steps)
        };
        let savepoints = self.sessions[s].savepoints.clone();
        let next_savepoint = self.sessions[s].next_savepoint;
        let rng = &mut self.rng;
        if aborted {
            return match savepoints.last() {
                Some(name) if rng.gen_bool(0.5) => Step::Sql {
                    sql: format!("ROLLBACK TO SAVEPOINT {name}"),
                    kind: Kind::RollbackTo(name.clone()),
                },
                _ => Step::Sql { sql: "ROLLBACK".into(), kind: Kind::End },
            };
        }
        let exclude = &self.config.exclude;
        let temp_targets: Vec<&'static str> =
            if self.sessions[s].temp_child { vec!["fz_tc"] } else { Vec::new() };
        let roll = self.rng.gen_range(0..1000);
        let rng = &mut self.rng;
        if in_txn {
            let end_weight = 60 + 25 * txn_steps.min(12);
            match roll {
                r if r < 520 => self.read_step(),
                r if r < 700 => steps::write(rng, &temp_targets),
                r if r < 760 => steps::setting(rng, &self.roles, superuser, exclude),
                r if r < 780 => {
                    let name = format!("s{next_savepoint}");
                    Step::Sql { sql: format!("SAVEPOINT {name}"), kind: Kind::Savepoint(name) }
                }
                r if r < 800 && !savepoints.is_empty() => {
                    let name = savepoints.choose(rng).unwrap().clone();
                    if rng.gen_bool(0.5) {
                        Step::Sql {
                            sql: format!("ROLLBACK TO SAVEPOINT {name}"),
                            kind: Kind::RollbackTo(name),
                        }
                    } else {
                        Step::Sql {
                            sql: format!("RELEASE SAVEPOINT {name}"),
                            kind: Kind::Release(name),
                        }
                    }
                }
                r if r < 804 && superuser => steps::ddl(rng, &self.roles, exclude),
                r if r < 806 => {
                    let gid = format!("fz_{}_{}", self.config.seed, self.step);
                    Step::Sql {
                        sql: format!("PREPARE TRANSACTION '{gid}'"),
                        kind: Kind::Prepare(gid),
                    }
                }
                r if r < 805 => steps::temp(rng, exclude),
                r if r < 805 + end_weight => steps::end(rng),
                _ => self.read_step(),
            }
        } else if !self.prepared.is_empty() && roll < 100 {
            let gid = self.prepared[0].clone();
            let verb = if roll < 70 { "COMMIT" } else { "ROLLBACK" };
            Step::Sql { sql: format!("{verb} PREPARED '{gid}'"), kind: Kind::Resolve(gid) }
        } else {
            match roll {
                r if r < 680 => self.read_step(),
                r if r < 760 => steps::write(rng, &temp_targets),
                r if r < 795 => steps::setting(rng, &self.roles, superuser, exclude),
                r if r < 820 => self.read_step(),
                r if r < 900 => steps::begin(rng),
                r if r < 904 && superuser => steps::ddl(rng, &self.roles, exclude),
                r if r < 905 => steps::temp(rng, exclude),
                _ => self.read_step(),
            }
        }
    }

    /// A read: most go to a hot set of the pool's first entries with their parameters' first
    /// values (so texts repeat and hits happen), the rest to the whole pool, skewed.
    fn read_step(&mut self) -> Step {
        let hot = self.rng.gen_bool(0.85);
        let query = if hot {
            // The last hot query (a defect area's, usually bypassed once fixed) gets fewer reads.
            let hot_len = HOT.min(self.pool.len());
            if self.rng.gen_bool(0.1) {
                hot_len - 1
            } else {
                self.rng.gen_range(0..hot_len - 1)
            }
        } else {
            let u: f64 = self.rng.gen();
            ((u * u) * self.pool.len() as f64) as usize
        };
        let params = self.pool[query]
            .params
            .iter()
            .map(|set| {
                let choices = if hot && self.rng.gen_bool(0.8) { &set[..1] } else { set };
                choices.choose(&mut self.rng).unwrap().to_string()
            })
            .collect();
        let ttl = match self.rng.gen_range(0..20) {
            0 => Some("1 hour"),
            1 => Some("50 milliseconds"),
            _ => None,
        };
        let json = self.rng.gen_bool(0.1);
        Step::Read { query, params, ttl, json }
    }

    fn note(&mut self, s: usize, text: String) {
        if self.log.len() == LOG_KEEP {
            self.log.pop_front();
        }
        let session = &self.sessions[s];
        let state = if session.in_txn { " [txn]" } else { "" };
        self.log.push_back(format!("#{} s{} ({}){state}: {text}", self.step, s, session.login));
    }

    fn apply(&mut self, s: usize, step: Step) -> Result<(), Fatal> {
        match step {
            Step::Read { query, params, ttl, json } => self.read(s, query, params, ttl, json),
            // Whoever prepared it, a superuser outside the sessions finishes it (a session may
            // be in a transaction or SET ROLE to someone who may not).
            Step::Sql { sql, kind: Kind::Resolve(gid) } => {
                let outcome = exec(&mut self.monitor, &sql)?;
                if !outcome.is_error() {
                    self.prepared.retain(|g| *g != gid);
                }
                self.note(s, format!("(by the admin connection) {sql} -> {}", outcome.short()));
                Ok(())
            }
            Step::Copy { sql, data } => {
                let (outcome, replace) = copy_in(&mut self.sessions[s].client, &sql, &data)?;
                self.after_statement(s, &Kind::Other, &outcome);
                self.note(
                    s,
                    format!("{sql} ({} lines) -> {}", data.lines().count(), outcome.short()),
                );
                if replace {
                    // A new connection: its transaction, settings and temporary tables are gone.
                    let session = &mut self.sessions[s];
                    session.client = connect(&self.config.dsn, &self.db, &session.login)?;
                    session.in_txn = false;
                    session.aborted = false;
                    session.savepoints.clear();
                    session.temp_child = false;
                    self.note(s, "(reconnected after the refused COPY)".into());
                }
                Ok(())
            }
            Step::Sql { sql, kind } => {
                let outcome = exec(&mut self.sessions[s].client, &sql)?;
                if sql.contains("fz_tc") && !outcome.is_error() {
                    self.sessions[s].temp_child = sql.starts_with("CREATE");
                }
                self.after_statement(s, &kind, &outcome);
                self.note(s, format!("{sql} -> {}", outcome.short()));
                Ok(())
            }
        }
    }

    /// Tracks the session's transaction state after a statement.
    fn after_statement(&mut self, s: usize, kind: &Kind, outcome: &Outcome) {
        let session = &mut self.sessions[s];
        let ok = !outcome.is_error();
        match kind {
            Kind::Begin if ok => {
                session.in_txn = true;
                session.aborted = false;
                session.txn_steps = 0;
                session.savepoints.clear();
            }
            Kind::Prepare(gid) => {
                if ok {
                    self.prepared.push(gid.clone());
                }
                session.in_txn = false;
                session.aborted = false;
                session.savepoints.clear();
            }
            Kind::End => {
                session.in_txn = false;
                session.aborted = false;
                session.savepoints.clear();
            }
            Kind::Savepoint(name) if ok => {
                session.savepoints.push(name.clone());
                session.next_savepoint += 1;
            }
            Kind::RollbackTo(name) if ok => {
                let keep = session.savepoints.iter().position(|n| n == name).map_or(0, |i| i + 1);
                session.savepoints.truncate(keep);
                session.aborted = false;
            }
            Kind::Release(name) if ok => {
                let keep = session.savepoints.iter().position(|n| n == name).unwrap_or(0);
                session.savepoints.truncate(keep);
            }
            _ if !ok && session.in_txn => session.aborted = true,
            _ => {}
        }
        if session.in_txn {
            session.txn_steps += 1;
        }
    }

    /// A cached read and its plain twin, in the same transaction, with nothing in between.
    fn read(
        &mut self,
        s: usize,
        index: usize,
        params: Vec<String>,
        ttl: Option<&'static str>,
        json: bool,
    ) -> Result<(), Fatal> {
        let query = self.pool[index].clone();
        let (cached, plain) = read_sql(&query, &params, ttl, json);
        let in_txn = self.sessions[s].in_txn;
        // Outside a transaction: half the reads are two autocommit statements (the common use),
        // half share one implicit transaction (always so when the answer depends on the
        // transaction). Both statements go in one message when they can; after an error the
        // two are run again one by one to tell which failed.
        let together = !in_txn && (query.same_transaction || self.rng.gen_bool(0.5));
        let client = &mut self.sessions[s].client;
        let (got, want) = if in_txn {
            match exec_each(
                client,
                &format!("SAVEPOINT fz_read; {cached}; {plain}; RELEASE SAVEPOINT fz_read"),
            )? {
                Ok(results) => (results[1].clone(), results[2].clone()),
                Err(_) => {
                    exec(client, "ROLLBACK TO SAVEPOINT fz_read")?;
                    let got = exec(client, &cached)?;
                    if got.is_error() {
                        exec(client, "ROLLBACK TO SAVEPOINT fz_read")?;
                    }
                    let want = exec(client, &plain)?;
                    exec(
                        client,
                        if want.is_error() {
                            "ROLLBACK TO SAVEPOINT fz_read; RELEASE SAVEPOINT fz_read"
                        } else {
                            "RELEASE SAVEPOINT fz_read"
                        },
                    )?;
                    (got, want)
                }
            }
        } else if together {
            match exec_each(client, &format!("{cached}; {plain}"))? {
                Ok(results) => (results[0].clone(), results[1].clone()),
                Err(_) => {
                    let got = exec(client, &format!("BEGIN; {cached}"))?;
                    if got.is_error() {
                        exec(client, "ROLLBACK")?;
                        (got, exec(client, &plain)?)
                    } else {
                        let want = exec(client, &plain)?;
                        exec(client, if want.is_error() { "ROLLBACK" } else { "COMMIT" })?;
                        (got, want)
                    }
                }
            }
        } else {
            let got = exec(client, &cached)?;
            (got, exec(client, &plain)?)
        };
        self.summary.cached_reads += 1;
        if got.is_error() {
            self.summary.read_errors += 1;
        }
        if in_txn {
            self.sessions[s].txn_steps += 1;
        }
        let mode = if in_txn {
            "in txn"
        } else if together {
            "one implicit txn"
        } else {
            "autocommit"
        };
        self.note(s, format!("READ ({mode}) {cached} -> {}", got.short()));
        // A hit takes no lock: it does not wait for another transaction's uncommitted TRUNCATE
        // or ALTER TABLE, whose lock makes the plain run time out (lock_timeout). The hit's
        // rows are the committed ones, as a snapshot taken before that commit would show:
        // counted, not a difference.
        let lock_wait_skipped =
            !got.is_error() && matches!(&want, Outcome::Error { code, .. } if code == "55P03");
        if lock_wait_skipped {
            self.summary.lock_waits_skipped += 1;
        } else if !(if json && !query.ordered {
            same_answer(&sorted_json(&got), &sorted_json(&want), true)
        } else {
            same_answer(&got, &want, query.ordered)
        }) {
            self.difference(s, query.area, &cached, &plain, &got, &want, mode)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)] // one report line, built from every part of one step
    fn difference(
        &mut self,
        s: usize,
        area: Option<&str>,
        cached: &str,
        plain: &str,
        got: &Outcome,
        want: &Outcome,
        mode: &str,
    ) -> Result<(), Fatal> {
        let session = &self.sessions[s];
        let mut report = format!(
            "DIFFERENCE seed={} step={} session=s{} ({}{}), read {mode}{}\n  cached: {cached}\n  plain:  {plain}\n  cached answer: {}\n  plain answer:  {}\n  last steps (schema: cache_fuzz::setup_sql):\n",
            self.config.seed,
            self.step,
            s,
            session.login,
            if session.superuser { ", superuser" } else { "" },
            area.map(|a| format!(" (template of defect area {a})")).unwrap_or_default(),
            got.show(),
            want.show()
        );
        for line in &self.log {
            let _ = writeln!(report, "    {line}");
        }
        eprintln!("{report}");
        self.summary
            .differences
            .push(Difference { area: area.unwrap_or("other").to_string(), report });
        // Start clean so one defect is not reported over and over.
        self.monitor
            .batch_execute("SELECT pitstop.cache_clear()")
            .map_err(|e| Fatal(format!("cache_clear(): {e}")))?;
        Ok(())
    }
}

/// Equal rows (as multisets unless the query orders them), or errors of the same SQLSTATE.
fn same_answer(got: &Outcome, want: &Outcome, ordered: bool) -> bool {
    match (got, want) {
        (Outcome::Rows(a), Outcome::Rows(b)) => {
            if ordered {
                a == b
            } else {
                let (mut a, mut b) = (a.clone(), b.clone());
                a.sort();
                b.sort();
                a == b
            }
        }
        (Outcome::Error { code: a, .. }, Outcome::Error { code: b, .. }) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_pool_and_steps() {
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            let pool = schema::query_pool(&mut rng, 20, HOT, &[]);
            let roles = Roles::for_database("x");
            let steps: Vec<String> =
                (0..50).map(|_| format!("{:?}", steps::write(&mut rng, &[]))).collect();
            let ddl: Vec<String> =
                (0..20).map(|_| format!("{:?}", steps::ddl(&mut rng, &roles, &[]))).collect();
            (pool.iter().map(|q| q.text.clone()).collect::<Vec<_>>(), steps, ddl)
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn parameters_become_literals_for_the_plain_run() {
        let params = vec!["1".to_string(), "it's".to_string()];
        assert_eq!(
            substitute("SELECT $1::int, $2::text", &params),
            "SELECT '1'::int, 'it''s'::text"
        );
    }

    #[test]
    fn answers_compare_as_multisets_unless_ordered() {
        let rows =
            |v: &[&str]| Outcome::Rows(v.iter().map(|s| vec![Some(s.to_string())]).collect());
        assert!(same_answer(&rows(&["a", "b"]), &rows(&["b", "a"]), false));
        assert!(!same_answer(&rows(&["a", "b"]), &rows(&["b", "a"]), true));
        assert!(!same_answer(&rows(&["a", "a"]), &rows(&["a"]), false));
        let err = |c: &str| Outcome::Error { code: c.into(), message: String::new() };
        assert!(same_answer(&err("42501"), &err("42501"), false));
        assert!(!same_answer(&err("42501"), &rows(&[]), false));
        assert!(!same_answer(&err("42501"), &err("XX000"), false));
    }
}
