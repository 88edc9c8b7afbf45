//! `pitstop top`: a live terminal view refreshed every `--interval`: the statements running
//! now and what they wait on (pg_stat_activity, without this session), the statements that
//! took the most time since the last refresh (pg_stat_statements counters, differenced), and
//! this host's CPU, memory and disk I/O (the daemon's monitor sampler). `q`, Esc or Ctrl-C
//! quits; the terminal is left as it was found (main screen, cooked mode, cursor shown), also
//! after an error or a panic. Not on a terminal: one snapshot as text (or `--json`) and exit.

use crate::db::{self, conninfo::Explicit};
use crate::http::console::reader::{rows_of, ReadError, Rows, Section};
use crate::http::console::section_json;
use crate::monitor::catalog::{CPU, DISK_READ, DISK_WRITTEN, LOAD1, MEM_TOTAL, MEM_USED};
use crate::monitor::host::HostSampler;
use crate::output::one_line;
use crate::service::state::unix_now;
use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use crossterm::{cursor, execute, queue, terminal};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// Longest one refresh's statement may run.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Statements listed under "top statements".
const TOP: usize = 10;

/// The sessions running something now, oldest statement first. Its columns are qualified: a
/// bare name after a comma that is also a table's (`state`, `query`) would make the statement
/// the application's (sql/queries/own_statement.sql).
const ACTIVE: &str = "SELECT a.pid, a.usename::text AS username, a.datname::text AS database, a.application_name, a.state, \
     coalesce(a.wait_event_type || ':' || a.wait_event, '') AS wait, \
     extract(epoch FROM clock_timestamp() - a.query_start)::float8 AS running_seconds, a.query \
     FROM pg_catalog.pg_stat_activity a \
     WHERE a.pid <> pg_catalog.pg_backend_pid() AND a.backend_type = 'client backend' AND a.state IS DISTINCT FROM 'idle' \
     ORDER BY a.query_start NULLS LAST LIMIT 100";

/// pg_stat_statements' counters of every statement but pitstop's own (this one among them),
/// from the view in `schema` (quoted): never one that the search_path finds first.
fn statements_sql(schema: &str) -> String {
    format!(
        "SELECT s.userid::int8 AS userid, s.dbid::int8 AS dbid, s.queryid, s.toplevel, s.calls, s.total_exec_time AS total_ms, s.query \
           FROM {schema}.pg_stat_statements s WHERE s.queryid IS NOT NULL AND {}",
        crate::http::console::sql::NOT_OWN
    )
}

/// A statement's time in the last interval.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Busy {
    pub queryid: i64,
    pub calls: i64,
    pub total_ms: f64,
    pub mean_ms: f64,
    pub query: String,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Host {
    pub cpu_ratio: Option<f64>,
    pub load1: Option<f64>,
    pub memory_used_bytes: Option<f64>,
    pub memory_total_bytes: Option<f64>,
    /// Over the last interval, all file systems together (None before two samples).
    pub disk_read_bytes_per_second: Option<f64>,
    pub disk_written_bytes_per_second: Option<f64>,
}

/// One refresh.
#[derive(Debug, Clone)]
pub struct Frame {
    pub at: f64,
    pub interval_seconds: f64,
    pub active: Section,
    /// None until two reads of pg_stat_statements were taken.
    pub top_statements: Option<Result<Vec<Busy>, ReadError>>,
    pub host: Host,
}

impl Frame {
    /// `--json`: sections as the console's API gives them (`{"rows": …}` or `{"error": …}`).
    pub fn json(&self) -> Value {
        let top = match &self.top_statements {
            None => Value::Null,
            Some(Ok(busy)) => serde_json::json!({ "rows": busy }),
            Some(Err(e)) => section_json(&Err(e.clone())),
        };
        serde_json::json!({
            "at": self.at,
            "interval_seconds": self.interval_seconds,
            "active": section_json(&self.active),
            "top_statements": top,
            "host": self.host,
        })
    }
}

type Key = (i64, i64, i64, bool);

/// Counters from one read of pg_stat_statements: calls and total ms by (user, db, queryid, toplevel).
type Counters = HashMap<Key, (i64, f64, String)>;

fn counters(rows: &Rows) -> Counters {
    let int =
        |r: &serde_json::Map<String, Value>, k: &str| r.get(k).and_then(Value::as_i64).unwrap_or(0);
    rows.iter()
        .map(|r| {
            let key = (
                int(r, "userid"),
                int(r, "dbid"),
                int(r, "queryid"),
                r.get("toplevel") != Some(&Value::Bool(false)),
            );
            let total = r.get("total_ms").and_then(Value::as_f64).unwrap_or(0.0);
            (
                key,
                (
                    int(r, "calls"),
                    total,
                    r.get("query").and_then(Value::as_str).unwrap_or("").to_string(),
                ),
            )
        })
        .collect()
}

/// The statements that ran between two reads, most time first; a statement new since `before`
/// or whose counters fell (a reset, an eviction) counts from zero.
pub fn busiest(before: &Counters, now: &Counters, n: usize) -> Vec<Busy> {
    let mut busy: Vec<Busy> = now
        .iter()
        .filter_map(|(key, (calls, total, query))| {
            let (c0, t0) = match before.get(key) {
                Some((c0, t0, _)) if c0 <= calls && t0 <= total => (*c0, *t0),
                _ => (0, 0.0),
            };
            let calls = calls - c0;
            (calls > 0).then(|| Busy {
                queryid: key.2,
                calls,
                total_ms: total - t0,
                mean_ms: (total - t0) / calls as f64,
                query: query.clone(),
            })
        })
        .collect();
    busy.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms).then(a.queryid.cmp(&b.queryid)));
    busy.truncate(n);
    busy
}

/// Reads the database and the host each refresh, keeping what the next one differences.
struct Sampler {
    target: db::Target,
    client: Option<Client>,
    host: HostSampler,
    statements: Option<(Instant, Counters)>,
    disk: Option<(Instant, f64, f64)>,
    /// None when pg_stat_statements is not installed in the database.
    sql: Option<String>,
}

impl Sampler {
    async fn connect(target: db::Target) -> anyhow::Result<Sampler> {
        let client = db::connect(&target).await?;
        let schema = client
            .query_opt(crate::maintenance::snapshot::FIND, &[])
            .await?
            .map(|row| row.get::<_, String>(0));
        let sql = schema.as_deref().map(statements_sql);
        Ok(Sampler {
            target,
            client: Some(client),
            host: HostSampler::new(),
            statements: None,
            disk: None,
            sql,
        })
    }

    async fn frame(&mut self) -> Frame {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = db::connect(&self.target).await.ok();
        }
        let started = Instant::now();
        let (active, top) = match &self.client {
            Some(client) => {
                let statements = async {
                    match &self.sql {
                        Some(sql) => rows_of(client, sql, &[]).await,
                        None => Err(ReadError::unavailable(
                            crate::maintenance::snapshot::MISSING.into(),
                        )),
                    }
                };
                let (active, statements) = tokio::join!(rows_of(client, ACTIVE, &[]), statements);
                let top = match statements {
                    Ok(rows) => {
                        let now = counters(&rows);
                        let top = self
                            .statements
                            .as_ref()
                            .map(|(_, before)| Ok(busiest(before, &now, TOP)));
                        self.statements = Some((started, now));
                        top
                    }
                    Err(e) => Some(Err(e)),
                };
                (active, top)
            }
            None => {
                let e = ReadError::unavailable("not connected (trying again each refresh)".into());
                (Err(e.clone()), Some(Err(e)))
            }
        };
        let interval =
            self.statements.as_ref().map(|(at, _)| at.elapsed().as_secs_f64()).unwrap_or(0.0);
        Frame {
            at: unix_now(),
            interval_seconds: interval,
            active,
            top_statements: top,
            host: self.host(),
        }
    }

    fn host(&mut self) -> Host {
        let samples = self.host.sample(None).samples;
        let one = |m: &str| samples.iter().find(|s| s.metric == m).map(|s| s.value);
        let sum = |m: &str| samples.iter().filter(|s| s.metric == m).map(|s| s.value).sum::<f64>();
        let (read, written) = (sum(DISK_READ), sum(DISK_WRITTEN));
        let now = Instant::now();
        let rates = self.disk.map(|(at, r0, w0)| {
            let secs = now.duration_since(at).as_secs_f64().max(1e-3);
            (((read - r0) / secs).max(0.0), ((written - w0) / secs).max(0.0))
        });
        self.disk = Some((now, read, written));
        Host {
            cpu_ratio: one(CPU),
            load1: one(LOAD1),
            memory_used_bytes: one(MEM_USED),
            memory_total_bytes: one(MEM_TOTAL),
            disk_read_bytes_per_second: rates.map(|r| r.0),
            disk_written_bytes_per_second: rates.map(|r| r.1),
        }
    }
}

fn bytes(b: f64) -> String {
    crate::http::console::overview::bytes(b)
}

/// `text` on one line (whitespace collapsed), at most `width` characters.
fn fit(text: &str, width: usize) -> String {
    let flat = crate::output::printable(text).split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= width {
        flat
    } else if width == 0 {
        String::new()
    } else {
        format!("{}…", flat.chars().take(width - 1).collect::<String>())
    }
}

/// The screen: `height` lines at most, each at most `width` characters.
pub fn render(f: &Frame, title: &str, width: usize, height: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let clock = chrono::DateTime::from_timestamp(f.at as i64, 0)
        .map(|t| t.format("%H:%M:%S UTC").to_string())
        .unwrap_or_default();
    lines.push(format!("{title} · {clock} · q quits"));
    let h = &f.host;
    let pct =
        |r: Option<f64>| r.map(|r| format!("{:.0} %", r * 100.0)).unwrap_or_else(|| "?".into());
    let memory = match (h.memory_used_bytes, h.memory_total_bytes) {
        (Some(used), Some(total)) if total > 0.0 => {
            format!("{} of {} ({:.0} %)", bytes(used), bytes(total), used / total * 100.0)
        }
        _ => "?".into(),
    };
    let io = match (h.disk_read_bytes_per_second, h.disk_written_bytes_per_second) {
        (Some(r), Some(w)) => format!("read {}/s, written {}/s", bytes(r), bytes(w)),
        _ => "measured from the next refresh".into(),
    };
    lines.push(format!(
        "host: cpu {} · load {} · memory {memory} · disk {io}",
        pct(h.cpu_ratio),
        h.load1.map(|l| format!("{l:.2}")).unwrap_or_else(|| "?".into())
    ));
    lines.push(String::new());

    // The statement list (a blank line, its title, header and rows) keeps its lines; the
    // active list gets the rest, less one for "… n more".
    let top_lines = match &f.top_statements {
        Some(Ok(busy)) => busy.len().max(1) + 3,
        _ => 2,
    };
    match &f.active {
        Ok(rows) => {
            lines.push(format!("active statements ({}):", rows.len()));
            lines.push(format!(
                "{:>8} {:<12} {:<12} {:<20} {:>8}  {}",
                "pid", "user", "database", "wait", "time", "statement"
            ));
            let room = height.saturating_sub(lines.len() + top_lines + 1).max(1);
            for r in rows.iter().take(room) {
                let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
                let state = s("state");
                let wait =
                    if s("wait").is_empty() { state.to_string() } else { s("wait").to_string() };
                let secs = r.get("running_seconds").and_then(Value::as_f64).unwrap_or(0.0);
                let head = format!(
                    "{:>8} {:<12} {:<12} {:<20} {:>7.1}s  ",
                    r.get("pid").and_then(Value::as_i64).unwrap_or(0),
                    fit(s("username"), 12),
                    fit(s("database"), 12),
                    fit(&wait, 20),
                    secs
                );
                let rest = width.saturating_sub(head.chars().count());
                lines.push(format!("{head}{}", fit(s("query"), rest)));
            }
            if rows.len() > room {
                lines.push(format!("… {} more", rows.len() - room));
            }
            if rows.is_empty() {
                lines.push("  nothing is running".into());
            }
        }
        Err(e) => lines.push(format!("active statements: {}", one_line(&e.explain()))),
    }
    lines.push(String::new());
    match &f.top_statements {
        None => lines
            .push("top statements: from the next refresh (pg_stat_statements differenced)".into()),
        Some(Err(e)) => lines.push(format!("top statements: {}", one_line(&e.explain()))),
        Some(Ok(busy)) => {
            lines.push(format!("top statements by time in the last {:.1} s:", f.interval_seconds));
            lines.push(format!(
                "{:>10} {:>8} {:>10}  {}",
                "total ms", "calls", "mean ms", "statement"
            ));
            for b in busy {
                let head = format!("{:>10.1} {:>8} {:>10.3}  ", b.total_ms, b.calls, b.mean_ms);
                let rest = width.saturating_sub(head.chars().count());
                lines.push(format!("{head}{}", fit(&b.query, rest)));
            }
            if busy.is_empty() {
                lines.push("  no statement ran".into());
            }
        }
    }
    lines.truncate(height.max(1));
    lines.into_iter().map(|l| fit_keep_spaces(&l, width)).collect()
}

/// A line cut to `width` characters, its spacing kept.
fn fit_keep_spaces(line: &str, width: usize) -> String {
    if line.chars().count() <= width {
        line.to_string()
    } else {
        line.chars().take(width).collect()
    }
}

/// Puts the terminal back as it was: main screen, cooked mode, cursor shown. Safe to call twice.
fn restore() {
    let mut out = std::io::stdout();
    let _ = execute!(out, terminal::LeaveAlternateScreen, cursor::Show);
    let _ = terminal::disable_raw_mode();
}

/// The terminal in raw mode on the alternate screen while it lives (dropped on return, error
/// or unwinding panic).
struct Screen;

impl Screen {
    fn enter() -> std::io::Result<Screen> {
        // A panic message must reach the main screen, in cooked mode, to be read.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        terminal::enable_raw_mode()?;
        let screen = Screen;
        execute!(std::io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)?;
        Ok(screen)
    }

    fn draw(&self, lines: &[String]) -> std::io::Result<()> {
        let mut out = std::io::stdout();
        queue!(out, cursor::MoveTo(0, 0), terminal::Clear(terminal::ClearType::All))?;
        for (i, line) in lines.iter().enumerate() {
            queue!(out, cursor::MoveTo(0, i as u16))?;
            out.write_all(line.as_bytes())?;
        }
        out.flush()
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Whether a key event asks to quit: q, Esc, Ctrl-C (raw mode delivers it as a key).
fn quits(e: &Event) -> bool {
    match e {
        Event::Key(k) if k.kind != KeyEventKind::Release => {
            matches!(k.code, KeyCode::Char('q') | KeyCode::Char('Q') | KeyCode::Esc)
                || (k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL))
        }
        _ => false,
    }
}

pub fn command(connection: &Explicit<'_>, interval: Duration, json: bool) -> ExitCode {
    let interval = interval.max(Duration::from_millis(100));
    let Some(runtime) = crate::cli_runtime() else { return ExitCode::FAILURE };
    let target =
        match db::cli_target(connection, Some(STATEMENT_TIMEOUT), &|name| std::env::var(name).ok())
        {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{}", db::describe_error(&e));
                return ExitCode::FAILURE;
            }
        };
    let title = format!(
        "pitstop top · {} · every {}",
        target.config.get_dbname().unwrap_or("?"),
        humantime::format_duration(interval)
    );
    let mut sampler = match runtime.block_on(Sampler::connect(target)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}", db::describe_error(&e));
            return ExitCode::FAILURE;
        }
    };
    let interactive = std::io::stdout().is_terminal() && std::io::stdin().is_terminal() && !json;
    if !interactive {
        // One snapshot: two reads an interval apart, so "the last interval" has a meaning.
        runtime.block_on(sampler.frame());
        std::thread::sleep(interval);
        let frame = runtime.block_on(sampler.frame());
        if json {
            println!("{}", serde_json::to_string_pretty(&frame.json()).unwrap_or_default());
        } else {
            for line in render(&frame, &title, 200, 1000) {
                println!("{line}");
            }
        }
        return ExitCode::SUCCESS;
    }
    match live(&runtime, &mut sampler, &title, interval) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: pitstop top: {}", one_line(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}

fn live(
    runtime: &tokio::runtime::Runtime,
    sampler: &mut Sampler,
    title: &str,
    interval: Duration,
) -> std::io::Result<()> {
    let screen = Screen::enter()?;
    loop {
        let frame = runtime.block_on(sampler.frame());
        let mut shown = false;
        let deadline = Instant::now() + interval;
        loop {
            if !shown {
                let (w, h) = terminal::size().unwrap_or((80, 24));
                screen.draw(&render(&frame, title, w as usize, h as usize))?;
                shown = true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !event::poll(left)? {
                break;
            }
            match event::read()? {
                e if quits(&e) => return Ok(()),
                Event::Resize(..) => shown = false,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn counters_of(list: &[(i64, i64, f64)]) -> Counters {
        list.iter()
            .map(|(id, calls, total)| ((10, 1, *id, true), (*calls, *total, format!("q{id}"))))
            .collect()
    }

    #[test]
    fn busiest_differences_the_counters_most_time_first() {
        let before = counters_of(&[(1, 10, 100.0), (2, 5, 50.0), (3, 7, 70.0)]);
        // 1: 2 calls, 40 ms; 2: nothing; 3: reset (fell), counts from zero; 4: new.
        let now = counters_of(&[(1, 12, 140.0), (2, 5, 50.0), (3, 1, 5.0), (4, 3, 90.0)]);
        let busy = busiest(&before, &now, 10);
        let got: Vec<_> = busy.iter().map(|b| (b.queryid, b.calls, b.total_ms)).collect();
        assert_eq!(got, vec![(4, 3, 90.0), (1, 2, 40.0), (3, 1, 5.0)]);
        assert_eq!(busy[1].mean_ms, 20.0);
        assert_eq!(busiest(&before, &now, 1).len(), 1);
    }

    fn frame(active: usize) -> Frame {
        let rows = (0..active)
            .map(|i| {
                json!({"pid": 100 + i, "username": "app", "database": "shop", "state": "active", "wait": "Timeout:PgSleep",
                       "running_seconds": 2.5, "query": format!("SELECT pg_sleep(30)   AS\n sleeper_{i}")})
                .as_object()
                .unwrap()
                .clone()
            })
            .collect();
        Frame {
            at: 0.0,
            interval_seconds: 1.0,
            active: Ok(rows),
            top_statements: Some(Ok(vec![Busy {
                queryid: 1,
                calls: 3,
                total_ms: 30.0,
                mean_ms: 10.0,
                query: "SELECT 1".into(),
            }])),
            host: Host {
                cpu_ratio: Some(0.25),
                load1: Some(0.5),
                memory_used_bytes: Some(1024.0),
                memory_total_bytes: Some(4096.0),
                ..Default::default()
            },
        }
    }

    #[test]
    fn render_fits_the_screen_and_shows_every_part() {
        let lines = render(&frame(2), "pitstop top", 100, 40);
        let text = lines.join("\n");
        assert!(lines.iter().all(|l| l.chars().count() <= 100), "{text}");
        assert!(
            text.contains("host: cpu 25 % · load 0.50 · memory 1.0 KiB of 4.0 KiB (25 %)"),
            "{text}"
        );
        assert!(
            text.contains("Timeout:PgSleep") && text.contains("SELECT pg_sleep(30) AS sleeper_1"),
            "{text}"
        );
        assert!(
            text.contains("top statements by time in the last 1.0 s") && text.contains("SELECT 1"),
            "{text}"
        );
        // A small screen: the active list is cut, the statements still shown, no line too many.
        let lines = render(&frame(50), "pitstop top", 60, 20);
        assert!(lines.len() <= 20, "{lines:#?}");
        assert!(lines.iter().any(|l| l.starts_with("… ") && l.ends_with("more")), "{lines:#?}");
        assert!(lines.iter().any(|l| l.contains("SELECT 1")), "{lines:#?}");
    }

    #[test]
    fn a_server_message_stays_on_its_line() {
        let mut f = frame(1);
        let hostile = "boom\n  nothing is running\u{1b}[2J";
        f.active = Err(ReadError { kind: "failed", sqlstate: None, message: hostile.into() });
        f.top_statements = Some(Err(ReadError::unavailable(hostile.into())));
        let lines = render(&f, "pitstop top", 200, 40);
        assert!(lines.iter().all(|l| !l.chars().any(char::is_control)), "{lines:#?}");
        assert!(!lines.iter().any(|l| l == "  nothing is running"), "{lines:#?}");
    }

    #[test]
    fn q_escape_and_ctrl_c_quit() {
        use crossterm::event::KeyEvent;
        let key = |code, modifiers| Event::Key(KeyEvent::new(code, modifiers));
        assert!(quits(&key(KeyCode::Char('q'), KeyModifiers::NONE)));
        assert!(quits(&key(KeyCode::Esc, KeyModifiers::NONE)));
        assert!(quits(&key(KeyCode::Char('c'), KeyModifiers::CONTROL)));
        assert!(!quits(&key(KeyCode::Char('c'), KeyModifiers::NONE)));
        assert!(!quits(&Event::Resize(80, 24)));
    }
}
