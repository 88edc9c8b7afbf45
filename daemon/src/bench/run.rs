//! The load: one tokio-postgres connection per client, stages of client counts, an optional
//! open-loop rate, and one collector task that keeps the histograms and prints progress.

use super::expr::{self, Rng, Value, Vars};
use super::script::{Command, Piece, Script, SleepAmount, Statement};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_postgres::types::{Format, IsNull, ToSql, Type};
use tokio_postgres::Client;

/// Width of the windows whose median latencies `--compare` tests.
pub const WINDOW: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub name: String,
    pub clients: usize,
    pub start: Duration,
    pub end: Duration,
}

/// Ramp stages at lo, 2·lo, 4·lo, … clients (below hi), sharing `ramp` equally, then the
/// hold stage at hi clients for `duration`.
pub fn stages(lo: usize, hi: usize, ramp: Duration, duration: Duration) -> Vec<Stage> {
    let mut counts = Vec::new();
    let mut c = lo;
    while c < hi {
        counts.push(c);
        c = c.saturating_mul(2);
    }
    let mut out = Vec::new();
    let mut at = Duration::ZERO;
    if !counts.is_empty() && !ramp.is_zero() {
        let step = ramp / counts.len() as u32;
        for (i, &clients) in counts.iter().enumerate() {
            let end = if i + 1 == counts.len() { ramp } else { at + step };
            out.push(Stage { name: format!("ramp {}", i + 1), clients, start: at, end });
            at = end;
        }
    }
    out.push(Stage { name: "hold".into(), clients: hi, start: at, end: at + duration });
    out
}

/// A client's connection: the bench's own protocol loop (plaintext, one host) or the driver.
pub enum Conn {
    Driver(Client),
    Direct(super::wire::Session),
}

/// A prepared statement on either connection.
enum Handle {
    Driver(tokio_postgres::Statement),
    /// The statement's name on the server.
    Direct(String),
}

/// A prepared statement and the variable of each of its parameters.
struct PreparedStatement {
    handle: Handle,
    names: Vec<String>,
}

/// Why a statement failed.
enum StatementError {
    /// The server's SQLSTATE (or "client"); the session goes on.
    Sql(String),
    /// The connection is gone, and why.
    Lost(String),
}

/// A client's session: its connection and, with `--prepared`, its statements per script and
/// command.
pub struct Session {
    conn: Conn,
    prepared: Option<Vec<Vec<Option<PreparedStatement>>>>,
}

impl Session {
    pub fn new(conn: Conn) -> Session {
        Session { conn, prepared: None }
    }

    /// Prepares every statement of every script (`--prepared`).
    pub async fn prepare(&mut self, scripts: &[Script]) -> Result<(), String> {
        let mut statements = Vec::new();
        for (n, script) in scripts.iter().enumerate() {
            let mut per_command = Vec::new();
            for (index, command) in script.commands.iter().enumerate() {
                per_command.push(match command {
                    Command::Sql(s) => {
                        let (text, names) = s.parameterized();
                        let failed =
                            |e: String| format!("{}:{}: cannot prepare: {e}", script.name, s.line);
                        let handle = match &mut self.conn {
                            Conn::Driver(client) => Handle::Driver(
                                client
                                    .prepare(&text)
                                    .await
                                    .map_err(|e| failed(crate::db::describe_pg(&e)))?,
                            ),
                            Conn::Direct(wire) => {
                                let name = format!("pitstop_{n}_{index}");
                                wire.prepare(&name, &text)
                                    .await
                                    .map_err(|e| failed(e.describe()))?;
                                Handle::Direct(name)
                            }
                        };
                        Some(PreparedStatement { handle, names })
                    }
                    _ => None,
                });
            }
            statements.push(per_command);
        }
        self.prepared = Some(statements);
        Ok(())
    }

    /// Runs one statement of a script; rows are read and dropped, as pgbench clears its results.
    async fn statement(
        &mut self,
        script: usize,
        index: usize,
        statement: &Statement,
        vars: &Vars,
        text: &mut TextBuffer,
    ) -> Result<(), StatementError> {
        let prepared = self.prepared.as_ref().and_then(|p| p[script][index].as_ref());
        match (&mut self.conn, prepared) {
            (Conn::Driver(client), prepared) => {
                let result = match prepared {
                    Some(PreparedStatement { handle: Handle::Driver(statement), names }) => {
                        text.parameters(names, vars);
                        client.execute_raw(statement, text.params()).await.map(drop)
                    }
                    _ => {
                        substitute_into(&mut text.text, statement, vars);
                        client.batch_execute(&text.text).await
                    }
                };
                result.map_err(|e| {
                    if client.is_closed() {
                        StatementError::Lost(format!("connection lost: {e}"))
                    } else {
                        StatementError::Sql(
                            e.code().map_or_else(|| "client".to_string(), |c| c.code().to_string()),
                        )
                    }
                })
            }
            (Conn::Direct(wire), prepared) => {
                let result = match prepared {
                    Some(PreparedStatement { handle: Handle::Direct(name), names }) => {
                        text.parameters(names, vars);
                        wire.execute(name, text.param_texts()).await
                    }
                    _ => {
                        substitute_into(&mut text.text, statement, vars);
                        wire.query(&text.text).await
                    }
                };
                result.map_err(|e| match e {
                    super::wire::WireError::Server { code, .. } => StatementError::Sql(code),
                    super::wire::WireError::Lost(why) => StatementError::Lost(why),
                })
            }
        }
    }

    /// Leaves no transaction open behind a failed statement (as pgbench does).
    async fn rollback(&mut self) {
        match &mut self.conn {
            Conn::Driver(client) => drop(client.simple_query("ROLLBACK").await),
            Conn::Direct(wire) => drop(wire.query("ROLLBACK").await),
        }
    }

    async fn close(self) {
        if let Conn::Direct(wire) = self.conn {
            wire.close().await;
        }
    }
}

pub struct Shared {
    pub scripts: Vec<Script>,
    pub stages: Vec<Stage>,
    pub rate: Option<f64>,
    pub predefined: Vars,
    ticket: AtomicU64,
    total_weight: u64,
}

impl Shared {
    pub fn new(
        scripts: Vec<Script>,
        stages: Vec<Stage>,
        rate: Option<f64>,
        predefined: Vars,
    ) -> Shared {
        let total_weight = scripts.iter().map(|s| u64::from(s.weight)).sum();
        Shared { scripts, stages, rate, predefined, ticket: AtomicU64::new(0), total_weight }
    }

    fn end(&self) -> Duration {
        self.stages.last().map_or(Duration::ZERO, |s| s.end)
    }

    pub fn stage_at(&self, offset: Duration) -> usize {
        self.stages.iter().position(|s| offset < s.end).unwrap_or(self.stages.len() - 1)
    }

    fn pick(&self, rng: &mut Rng) -> usize {
        let mut r = rng.next_u64() % self.total_weight.max(1);
        for (i, s) in self.scripts.iter().enumerate() {
            if r < u64::from(s.weight) {
                return i;
            }
            r -= u64::from(s.weight);
        }
        0
    }
}

/// What a client reports of one transaction.
pub struct Event {
    pub script: usize,
    pub stage: usize,
    pub latency_us: u64,
    /// SQLSTATE (or a short cause) of a failed transaction.
    pub error: Option<String>,
}

/// A parameter sent in text format: the server reads it as the type it inferred, as pgbench's
/// prepared mode does.
#[derive(Debug)]
struct TextParam<'a>(&'a str);

impl ToSql for TextParam<'_> {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    fn encode_format(&self, _: &Type) -> Format {
        Format::Text
    }
    tokio_postgres::types::to_sql_checked!();
}

/// Client-side time of each statement, per script and command (None: not a statement, or
/// never run).
pub type StatementTimes = Vec<Vec<Option<Histogram<u64>>>>;

/// One client: waits for its stage, then runs scripts until the end (or, with a rate, until
/// the schedule passes the end). Latency runs from the scheduled start under `--rate`.
pub async fn client(
    id: usize,
    mut session: Session,
    shared: Arc<Shared>,
    t0: Instant,
    events: mpsc::UnboundedSender<Event>,
) -> StatementTimes {
    let mut times: StatementTimes =
        shared.scripts.iter().map(|s| vec![None; s.commands.len()]).collect();
    let Some(first) = shared.stages.iter().find(|s| s.clients > id) else {
        session.close().await;
        return times;
    };
    tokio::time::sleep_until(t0 + first.start).await;
    let end = t0 + shared.end();
    let mut rng = Rng::new(
        (id as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D)
            ^ std::process::id() as u64
            ^ t0.elapsed().as_nanos() as u64,
    );
    let mut vars = shared.predefined.clone();
    vars.insert("client_id".into(), Value::Int(id as i64));
    let mut text = TextBuffer::default();
    loop {
        let scheduled = match shared.rate {
            Some(rate) => {
                let n = shared.ticket.fetch_add(1, Ordering::Relaxed);
                let at = t0 + Duration::from_secs_f64(n as f64 / rate);
                // Behind schedule, no transaction starts after the end either: the run lasts
                // its duration, and the lateness shows in the latencies.
                if at >= end || Instant::now() >= end {
                    break;
                }
                tokio::time::sleep_until(at).await;
                at
            }
            None => Instant::now(),
        };
        if scheduled >= end {
            break;
        }
        let script = shared.pick(&mut rng);
        let outcome = run_script(
            &mut session,
            script,
            &shared.scripts[script],
            &mut vars,
            &mut rng,
            &mut text,
            &mut times[script],
        )
        .await;
        let latency_us = scheduled.elapsed().as_micros() as u64;
        let stage = shared.stage_at(scheduled - t0);
        let fatal = matches!(&outcome, Err(Failure::Fatal(_)));
        let error = outcome.err().map(|f| match f {
            Failure::Sql(code) | Failure::Fatal(code) => code,
        });
        if events.send(Event { script, stage, latency_us, error }).is_err() || fatal {
            break;
        }
    }
    session.close().await;
    times
}

enum Failure {
    /// A statement failed (SQLSTATE); the client goes on.
    Sql(String),
    /// The connection or the script cannot go on.
    Fatal(String),
}

async fn run_script(
    session: &mut Session,
    script_index: usize,
    script: &Script,
    vars: &mut Vars,
    rng: &mut Rng,
    text: &mut TextBuffer,
    times: &mut [Option<Histogram<u64>>],
) -> Result<(), Failure> {
    for (index, command) in script.commands.iter().enumerate() {
        match command {
            Command::Set { name, expr } => {
                let value = expr::eval(expr, vars, rng)
                    .map_err(|e| Failure::Fatal(format!("{}: \\set {name}: {e}", script.name)))?;
                match vars.get_mut(name) {
                    Some(slot) => *slot = value,
                    None => {
                        vars.insert(name.clone(), value);
                    }
                }
            }
            Command::Sleep { amount, unit_us } => {
                let n = match amount {
                    SleepAmount::Const(n) => *n,
                    SleepAmount::Var(v) => vars.get(v).map_or(0, |v| v.as_f64().max(0.0) as u64),
                };
                tokio::time::sleep(Duration::from_micros(n.saturating_mul(*unit_us))).await;
            }
            Command::Sql(statement) => {
                let started = Instant::now();
                match session.statement(script_index, index, statement, vars, text).await {
                    Ok(()) => {}
                    Err(StatementError::Lost(why)) => {
                        // Said once here; the report counts it as "connection lost".
                        eprintln!("{}: {why}", script.name);
                        return Err(Failure::Fatal("connection lost".into()));
                    }
                    Err(StatementError::Sql(code)) => {
                        session.rollback().await;
                        return Err(Failure::Sql(code));
                    }
                }
                let us = started.elapsed().as_micros() as u64;
                let _ = times[index]
                    .get_or_insert_with(statement_histogram)
                    .record(us.clamp(1, 3_600_000_000));
            }
        }
    }
    Ok(())
}

/// A client's reused text: a statement with its variables in place (simple protocol), or the
/// parameters of a prepared one, each a range of `text`.
#[derive(Default)]
struct TextBuffer {
    text: String,
    ranges: Vec<std::ops::Range<usize>>,
}

impl TextBuffer {
    /// Each variable's value as text (an unset one as an empty string).
    fn parameters(&mut self, names: &[String], vars: &Vars) {
        self.text.clear();
        self.ranges.clear();
        for name in names {
            let start = self.text.len();
            if let Some(value) = vars.get(name) {
                value.push_to(&mut self.text);
            }
            self.ranges.push(start..self.text.len());
        }
    }

    fn params(&self) -> impl ExactSizeIterator<Item = TextParam<'_>> {
        self.param_texts().map(TextParam)
    }

    fn param_texts(&self) -> impl ExactSizeIterator<Item = &str> {
        self.ranges.iter().map(|r| &self.text[r.clone()])
    }
}

/// The statement's text with each variable's value in place (simple protocol), in `text`.
fn substitute_into(text: &mut String, statement: &Statement, vars: &Vars) {
    text.clear();
    for piece in &statement.pieces {
        match piece {
            Piece::Text(t) => text.push_str(t),
            Piece::Var(v) => match vars.get(v) {
                Some(value) => value.push_to(text),
                None => {
                    text.push(':');
                    text.push_str(v);
                }
            },
        }
    }
}

/// Per-statement histograms are one per client and statement: 2 digits (1 %) keep them small.
pub fn statement_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("static bounds are valid")
}

pub fn histogram() -> Histogram<u64> {
    // 1 µs to 1 h at 3 significant digits (0.1 % relative error).
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds are valid")
}

/// Everything measured, per script and stage.
pub struct Collected {
    pub by_script_stage: Vec<Vec<Histogram<u64>>>,
    pub errors: BTreeMap<(usize, usize, String), u64>,
    /// Median latency (µs) of each window, per script.
    pub windows: Vec<Vec<f64>>,
    pub elapsed: Duration,
}

/// Collects events until `done` (every client has finished); prints a progress line each
/// second. The events are taken on each window's tick, not as they come: a client's
/// transaction wakes no other task.
pub async fn collect(
    shared: Arc<Shared>,
    mut events: mpsc::UnboundedReceiver<Event>,
    t0: Instant,
    progress: super::progress::Progress,
    mut done: tokio::sync::oneshot::Receiver<()>,
) -> Collected {
    let (n_scripts, n_stages) = (shared.scripts.len(), shared.stages.len());
    let mut c = Collected {
        by_script_stage: (0..n_scripts)
            .map(|_| (0..n_stages).map(|_| histogram()).collect())
            .collect(),
        errors: BTreeMap::new(),
        windows: vec![Vec::new(); n_scripts],
        elapsed: Duration::ZERO,
    };
    // A window's latencies as they are (its exact median is cheaper than a histogram's reset).
    let mut window: Vec<Vec<u64>> = vec![Vec::new(); n_scripts];
    let mut second = histogram();
    let mut second_errors = 0u64;
    let mut tick = tokio::time::interval_at(t0 + WINDOW, WINDOW);
    let mut ticks = 0u32;
    loop {
        // A window due closes before the end is taken.
        let finished = tokio::select! {
            biased;
            _ = tick.tick() => false,
            _ = &mut done => true,
        };
        while let Ok(e) = events.try_recv() {
            match e.error {
                None => {
                    let v = e.latency_us.clamp(1, 3_600_000_000);
                    let _ = c.by_script_stage[e.script][e.stage].record(v);
                    window[e.script].push(v);
                    let _ = second.record(v);
                }
                Some(code) => {
                    *c.errors.entry((e.script, e.stage, code)).or_default() += 1;
                    second_errors += 1;
                }
            }
        }
        if finished {
            break;
        }
        for (script, w) in window.iter_mut().enumerate() {
            c.windows[script].extend(window_median(w));
            w.clear();
        }
        ticks += 1;
        if ticks.is_multiple_of(10) {
            let at = t0.elapsed();
            let clients = shared.stages
                [shared.stage_at(at.min(shared.end().saturating_sub(Duration::from_millis(1))))]
            .clients;
            progress.tick(at, clients, &second, second_errors);
            second.reset();
            second_errors = 0;
        }
    }
    for (script, w) in window.iter_mut().enumerate() {
        c.windows[script].extend(window_median(w));
    }
    progress.finish();
    c.elapsed = t0.elapsed();
    c
}

/// The median of a window's latencies (the lower one of an even count); None when empty.
fn window_median(latencies: &mut [u64]) -> Option<f64> {
    if latencies.is_empty() {
        return None;
    }
    let middle = (latencies.len() - 1) / 2;
    Some(*latencies.select_nth_unstable(middle).1 as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_the_variables_values_as_text() {
        let vars: Vars =
            [("aid".to_string(), Value::Int(-42)), ("ratio".to_string(), Value::Double(0.5))]
                .into_iter()
                .collect();
        let mut text = TextBuffer::default();
        text.parameters(&["aid".into(), "unset".into(), "ratio".into()], &vars);
        assert_eq!(text.params().map(|p| p.0).collect::<Vec<_>>(), ["-42", "", "0.5"]);
        // Reused: the next statement's parameters replace the last one's.
        text.parameters(&["ratio".into()], &vars);
        assert_eq!(text.params().map(|p| p.0).collect::<Vec<_>>(), ["0.5"]);
    }

    /// Events are taken on ticks, not as they come: those sent just before the end count too.
    #[test]
    fn the_collector_counts_every_event_sent_before_the_end() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let scripts = vec![super::super::script::parse("a", "SELECT 1", 1).unwrap()];
            let shared = Arc::new(Shared::new(
                scripts,
                stages(2, 2, Duration::ZERO, Duration::from_secs(1)),
                None,
                Vars::default(),
            ));
            let (sender, receiver) = mpsc::unbounded_channel();
            let (done, finished) = tokio::sync::oneshot::channel();
            let t0 = Instant::now();
            let collector = tokio::spawn(collect(
                shared,
                receiver,
                t0,
                super::super::progress::Progress::new(Duration::from_secs(1)),
                finished,
            ));
            let event = |latency_us, error: Option<&str>| Event {
                script: 0,
                stage: 0,
                latency_us,
                error: error.map(String::from),
            };
            for latency in [100, 200, 300] {
                sender.send(event(latency, None)).unwrap();
            }
            // Past a window's tick, then more, and the end right after them.
            tokio::time::sleep(WINDOW + WINDOW / 2).await;
            sender.send(event(400, None)).unwrap();
            sender.send(event(0, Some("40001"))).unwrap();
            done.send(()).unwrap();
            let c = collector.await.unwrap();
            assert_eq!(c.by_script_stage[0][0].len(), 4);
            assert_eq!(c.errors.get(&(0, 0, "40001".to_string())), Some(&1));
            // One window or two (as the ticks fell on a loaded machine); the last one closed.
            assert!((1..=2).contains(&c.windows[0].len()), "{:?}", c.windows[0]);
        });
    }

    #[test]
    fn a_windows_median_is_its_middle_latency() {
        assert_eq!(window_median(&mut []), None);
        assert_eq!(window_median(&mut [7]), Some(7.0));
        assert_eq!(window_median(&mut [900, 5, 40]), Some(40.0));
        assert_eq!(window_median(&mut [4, 1, 3, 2]), Some(2.0));
    }

    #[test]
    fn ramp_doubles_then_holds() {
        let s = stages(1, 4, Duration::from_secs(2), Duration::from_secs(2));
        let summary: Vec<_> = s
            .iter()
            .map(|s| (s.name.as_str(), s.clients, s.start.as_millis(), s.end.as_millis()))
            .collect();
        assert_eq!(
            summary,
            [("ramp 1", 1, 0, 1000), ("ramp 2", 2, 1000, 2000), ("hold", 4, 2000, 4000)]
        );
        let s = stages(1, 64, Duration::from_secs(30), Duration::from_secs(120));
        assert_eq!(s.iter().map(|s| s.clients).collect::<Vec<_>>(), [1, 2, 4, 8, 16, 32, 64]);
        assert_eq!(s[5].end, Duration::from_secs(30));
        assert_eq!(s[6].end, Duration::from_secs(150));
        assert_eq!(
            stages(8, 8, Duration::ZERO, Duration::from_secs(5)),
            [Stage {
                name: "hold".into(),
                clients: 8,
                start: Duration::ZERO,
                end: Duration::from_secs(5)
            }]
        );
        // 3:10 ramps through 3 and 6, then holds at 10.
        assert_eq!(
            stages(3, 10, Duration::from_secs(4), Duration::from_secs(1))
                .iter()
                .map(|s| s.clients)
                .collect::<Vec<_>>(),
            [3, 6, 10]
        );
    }

    #[test]
    fn substitution_and_weights() {
        let script =
            super::super::script::parse("t", "SELECT :a, ':a', :b::int, :missing;", 1).unwrap();
        let Command::Sql(statement) = &script.commands[0] else { panic!() };
        let vars: Vars = [("a".to_string(), Value::Int(-5)), ("b".to_string(), Value::Double(1.5))]
            .into_iter()
            .collect();
        let mut text = String::from("left over from the last statement");
        substitute_into(&mut text, statement, &vars);
        assert_eq!(text, "SELECT -5, ':a', 1.5::int, :missing");
        let scripts = vec![
            super::super::script::parse("a", "SELECT 1", 3).unwrap(),
            super::super::script::parse("b", "SELECT 2", 1).unwrap(),
        ];
        let shared = Shared::new(
            scripts,
            stages(1, 1, Duration::ZERO, Duration::from_secs(1)),
            None,
            Vars::default(),
        );
        let mut rng = Rng::new(3);
        let first = (0..40_000).filter(|_| shared.pick(&mut rng) == 0).count();
        assert!((29_000..31_000).contains(&first), "weight 3:1 gave {first} of 40000");
    }
}
