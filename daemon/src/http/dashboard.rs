//! `/host`: the daemon's status page (the console's Host page), one server-rendered HTML
//! page with inline CSS and inline SVG sparklines, no script and no external asset (the host may be offline); it reloads itself
//! every `REFRESH_SECONDS`. `render` is a pure function of a `Page`, the data `/status` and
//! `/metrics` show; every string from outside (names, labels, details, errors) goes through
//! `escape`.

use super::metrics;
use crate::monitor::alerts::Alert;
use crate::monitor::catalog::*;
use crate::monitor::live::View;
use crate::service::state::{unix_now, ComponentStatus, MaintenanceJob, State};
use axum::extract::State as Shared;
use axum::response::Html;
use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const REFRESH_SECONDS: u32 = 10;
const SPARK_WIDTH: f64 = 120.0;
const SPARK_HEIGHT: f64 = 22.0;

/// Everything one rendering shows.
#[derive(Debug, Clone)]
pub struct Page {
    /// Seconds since the Unix epoch when the page was taken (ages are counted from it).
    pub now: f64,
    pub uptime: Duration,
    pub profile: &'static str,
    pub extension: Option<String>,
    /// postgres, redis, relay, monitor, maintenance.
    pub components: Vec<(&'static str, ComponentStatus)>,
    /// Version, relay counters and lag, and the monitor's view (latest round, alerts, window).
    pub scrape: metrics::Snapshot,
    pub jobs: Vec<MaintenanceJob>,
}

impl Page {
    pub fn of(s: &State) -> Page {
        Page {
            now: unix_now(),
            uptime: s.uptime(),
            profile: s.profile(),
            extension: s.extension(),
            components: vec![
                ("postgres", s.postgres.get()),
                ("redis", s.redis.get()),
                ("relay", s.relay.get()),
                ("monitor", s.monitor.get()),
                ("maintenance", s.maintenance.get()),
            ],
            scrape: metrics::Snapshot::of(s),
            jobs: s.maintenance_jobs(),
        }
    }
}

/// The page as the console's Host page, with the console's navigation.
pub async fn page(Shared(state): Shared<Arc<State>>) -> Html<String> {
    Html(render(&Page::of(&state), true))
}

/// The page alone, when the console is off (`/` and `/host`).
pub async fn page_alone(Shared(state): Shared<Arc<State>>) -> Html<String> {
    Html(render(&Page::of(&state), false))
}

/// Text made safe for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub fn render(p: &Page, with_console_nav: bool) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let v = &p.scrape.monitor;
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\"><title>Host · pitstop</title><style>{CSS}{}body>nav{{margin:-1rem -2rem .8rem}}</style></head><body>\n",
        super::console::view::NAV_CSS
    );
    if with_console_nav {
        h.push_str(&super::console::view::nav("host").into_string());
    }
    let sampled = match v.sampled_at {
        Some(t) => format!("sampled {} ago", age(p.now - unix(t))),
        None => "not sampled yet".to_string(),
    };
    let _ = writeln!(
        h,
        "<header><h1>pitstop</h1><p>version {} · profile <b>{}</b> · extension {} · up {} · {} · reloads every {REFRESH_SECONDS} s · \
         <a href=\"/status\">/status</a> · <a href=\"/metrics\">/metrics</a></p></header>",
        escape(p.scrape.version),
        escape(p.profile),
        escape(p.extension.as_deref().unwrap_or("not installed")),
        age(p.uptime.as_secs_f64()),
        sampled,
    );
    components(&mut h, p);
    alerts(&mut h, p.now, &v.alerts);
    h.push_str("<div class=\"grid\">\n");
    host(&mut h, v);
    postgres(&mut h, v);
    h.push_str("</div>\n");
    relay(&mut h, &p.scrape);
    maintenance(&mut h, &p.jobs);
    monitor_footer(&mut h, v);
    h.push_str("</body></html>\n");
    h
}

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1rem 2rem;color:#1d232a;background:#f6f7f9}\
h1{margin:0;font-size:1.5rem}h2{font-size:1.05rem;margin:1.2rem 0 .4rem}header p{margin:.2rem 0;color:#555}\
table{border-collapse:collapse;background:#fff;width:100%}th,td{text-align:left;padding:.25rem .6rem;border-bottom:1px solid #e3e6ea;vertical-align:top}\
th{background:#eef0f3;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:0 2rem}\
.b{display:inline-block;padding:0 .45rem;border-radius:.6rem;font-size:.85em;font-weight:600;color:#fff;background:#7a828c}\
.up,.ok,.info{background:#2f8a4b}.down,.critical,.failed,.firing{background:#c0392b}.starting,.warning,.pending,.running,.skipped{background:#c98a0b}\
.disabled{background:#9aa1a9}.muted{color:#777}svg{vertical-align:middle;color:#3a6fb0}footer{margin-top:1.2rem;color:#666;font-size:.9em}\
@media(prefers-color-scheme:dark){body{background:#16191d;color:#dde1e6}table{background:#1f2328}th{background:#2a2f36}\
th,td{border-color:#333a42}header p,.muted,footer{color:#9aa3ad}svg{color:#7fb0ef}}";

/// A status badge; `class` is one of our own words (a state, an outcome, a severity).
fn badge(class: &str) -> String {
    let class = escape(class);
    format!("<span class=\"b {class}\">{class}</span>")
}

/// A table: the header cells, then rows of cells already rendered (escaped) as HTML.
fn table(h: &mut String, header: &[&str], rows: Vec<Vec<String>>) {
    h.push_str("<table><tr>");
    for th in header {
        let _ = write!(h, "<th>{}</th>", escape(th));
    }
    h.push_str("</tr>\n");
    for row in rows {
        h.push_str("<tr>");
        for cell in row {
            let _ = write!(h, "<td>{cell}</td>");
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
}

fn components(h: &mut String, p: &Page) {
    h.push_str("<section><h2>Components</h2>");
    let rows = p
        .components
        .iter()
        .map(|(name, c)| {
            vec![escape(name), badge(c.state.as_str()), age(p.now - c.since), escape(&c.detail)]
        })
        .collect();
    table(h, &["component", "state", "for", "detail"], rows);
    h.push_str("</section>\n");
}

/// A section of one table, or of a muted line when it has no row.
fn table_section(
    h: &mut String,
    title: &str,
    empty: &str,
    header: &[&str],
    rows: Vec<Vec<String>>,
) {
    let _ = write!(h, "<section><h2>{}</h2>", escape(title));
    if rows.is_empty() {
        let _ = writeln!(h, "<p class=\"muted\">{}</p></section>", escape(empty));
        return;
    }
    table(h, header, rows);
    h.push_str("</section>\n");
}

fn alerts(h: &mut String, now: f64, alerts: &[Alert]) {
    let rows = alerts
        .iter()
        .map(|a| {
            let labels =
                a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
            let value = a.value.map(number).unwrap_or_else(|| "—".into());
            let fired = a
                .fired_at
                .map(|t| format!(", firing for {}", age(now - unix(t))))
                .unwrap_or_default();
            vec![
                badge(a.severity.as_str()),
                badge(a.phase.as_str()),
                escape(&a.rule),
                escape(&format!("{} {labels}", a.metric)),
                escape(&format!("{value} (threshold {})", number(a.threshold))),
                escape(&format!("{} ago{fired}", age(now - unix(a.started_at)))),
                escape(&a.summary),
            ]
        })
        .collect();
    table_section(
        h,
        "Alerts",
        "No alert is pending or firing.",
        &["severity", "state", "rule", "metric", "value", "since", "summary"],
        rows,
    );
}

/// The latest value of an unlabelled family.
fn latest(v: &View, metric: &str) -> Option<f64> {
    v.samples.iter().find(|s| s.metric == metric && s.labels.is_empty()).map(|s| s.value)
}

/// A row of a metrics table: name, current value (text, escaped here), the window's sparkline.
fn metric_row(
    v: &View,
    name: &str,
    value: Option<String>,
    spark: Option<(&str, Scale)>,
) -> Vec<String> {
    let line = spark.and_then(|(m, scale)| {
        v.sparklines.iter().find(|(f, _)| *f == m).map(|(_, points)| sparkline(points, scale))
    });
    vec![escape(name), escape(value.as_deref().unwrap_or("—")), line.unwrap_or_default()]
}

fn used_of(used: Option<f64>, total: Option<f64>, ratio: Option<f64>) -> Option<String> {
    match (used, total) {
        (Some(u), Some(t)) => Some(format!(
            "{} of {}{}",
            bytes(u),
            bytes(t),
            ratio.map(|r| format!(" ({})", percent(r))).unwrap_or_default()
        )),
        _ => None,
    }
}

fn host(h: &mut String, v: &View) {
    h.push_str("<section><h2>Host</h2>");
    let l = |m: &str| latest(v, m);
    let load = l(LOAD1).map(|one| {
        format!(
            "{} / {} / {}",
            number(one),
            l(LOAD5).map(number).unwrap_or_default(),
            l(LOAD15).map(number).unwrap_or_default()
        )
    });
    let swap = match l(SWAP_TOTAL) {
        Some(0.0) => Some("no swap".to_string()),
        _ => used_of(l(SWAP_USED), l(SWAP_TOTAL), l(SWAP_RATIO)),
    };
    let processes = |rss: &str, cpu: &str| {
        l(rss).map(|r| {
            format!("{} resident, {} of a core", bytes(r), l(cpu).map(percent).unwrap_or_default())
        })
    };
    let postgres = processes(PG_RSS, PG_CPU)
        .map(|t| format!("{} processes, {t}", l(PG_PROCESSES).map(number).unwrap_or_default()));
    let rows = vec![
        metric_row(v, "CPU", l(CPU).map(percent), Some((CPU, Scale::Ratio))),
        metric_row(v, "load 1 / 5 / 15 min", load, Some((LOAD1, Scale::FromZero))),
        metric_row(
            v,
            "memory",
            used_of(l(MEM_USED), l(MEM_TOTAL), l(MEM_RATIO)),
            Some((MEM_RATIO, Scale::Ratio)),
        ),
        metric_row(v, "swap", swap, Some((SWAP_RATIO, Scale::Ratio))),
        metric_row(v, "PostgreSQL processes", postgres, None),
        metric_row(v, "pitstop daemon", processes(DAEMON_RSS, DAEMON_CPU), None),
    ];
    table(h, &["metric", "now", "window"], rows);
    let disks: Vec<Vec<String>> = v
        .samples
        .iter()
        .filter(|s| s.metric == DISK_TOTAL)
        .map(|total| {
            let of = |metric: &str| {
                v.samples
                    .iter()
                    .find(|s| s.metric == metric && s.labels == total.labels)
                    .map(|s| s.value)
            };
            let mount = total.labels.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>().join(" ");
            let used = of(DISK_USED).map(bytes).unwrap_or_default();
            vec![
                escape(&mount),
                escape(&used),
                escape(&bytes(total.value)),
                escape(&of(DISK_RATIO).map(percent).unwrap_or_default()),
            ]
        })
        .collect();
    if !disks.is_empty() {
        h.push_str("<h2>Disks</h2>");
        table(h, &["mount", "used", "size", "used %"], disks);
    }
    h.push_str("</section>\n");
}

fn postgres(h: &mut String, v: &View) {
    h.push_str("<section><h2>PostgreSQL</h2>");
    let l = |m: &str| latest(v, m);
    let by_state: Vec<(&str, f64)> = v
        .samples
        .iter()
        .filter(|s| s.metric == CONNECTIONS)
        .map(|s| (s.labels.first().map(|(_, state)| state.as_str()).unwrap_or("?"), s.value))
        .collect();
    let connections = l(MAX_CONNECTIONS).map(|max| {
        let total: f64 = by_state.iter().map(|(_, n)| n).sum();
        let states = by_state
            .iter()
            .filter(|(_, n)| *n > 0.0)
            .map(|(s, n)| format!("{s} {}", number(*n)))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "{} of {}{} — {states}",
            number(total),
            number(max),
            l(CONNECTIONS_RATIO).map(|r| format!(" ({})", percent(r))).unwrap_or_default()
        )
    });
    let xid = l(XID_RATIO)
        .map(|r| format!("{} (age {})", percent(r), l(XID_AGE).map(number).unwrap_or_default()));
    let rows = vec![
        metric_row(v, "connections", connections, Some((CONNECTIONS_RATIO, Scale::Ratio))),
        metric_row(v, "transactions per second", l(TPS).map(number), Some((TPS, Scale::FromZero))),
        metric_row(
            v,
            "cache hit ratio",
            l(CACHE_HIT).map(percent),
            Some((CACHE_HIT, Scale::Ratio)),
        ),
        metric_row(
            v,
            "replication lag",
            l(REPLICATION_LAG).map(seconds),
            Some((REPLICATION_LAG, Scale::FromZero)),
        ),
        metric_row(
            v,
            "longest transaction",
            l(LONGEST_XACT).map(seconds),
            Some((LONGEST_XACT, Scale::FromZero)),
        ),
        metric_row(v, "xid wraparound", xid, None),
    ];
    table(h, &["metric", "now", "window"], rows);
    if l(MAX_CONNECTIONS).is_none() {
        h.push_str(
            "<p class=\"muted\">Not sampled: see the monitor's detail under Components.</p>",
        );
    }
    h.push_str("</section>\n");
}

fn relay(h: &mut String, s: &metrics::Snapshot) {
    h.push_str("<section><h2>Relay</h2>");
    let cells = [
        s.delivered.to_string(),
        s.batches.to_string(),
        s.rounds.to_string(),
        s.pruned.to_string(),
        format!("{} / {}", s.postgres_errors, s.redis_errors),
        seconds(s.lag_seconds),
    ];
    table(
        h,
        &["delivered", "batches", "rounds", "pruned", "errors (postgres / redis)", "lag"],
        vec![cells.iter().map(|c| escape(c)).collect()],
    );
    h.push_str("</section>\n");
}

fn maintenance(h: &mut String, jobs: &[MaintenanceJob]) {
    let rows = jobs
        .iter()
        .map(|j| {
            let (last, outcome, detail) = match &j.last_run {
                Some(r) => (escape(&r.started_at), badge(&r.outcome), escape(&r.detail)),
                None => ("—".into(), String::new(), String::new()),
            };
            let running = if j.running { badge("running") } else { "no".into() };
            vec![
                escape(&j.name),
                escape(j.kind),
                escape(&j.schedule),
                (if j.enabled { "yes" } else { "no" }).into(),
                running,
                last,
                outcome,
                detail,
                escape(j.next_run.as_deref().unwrap_or("—")),
            ]
        })
        .collect();
    table_section(
        h,
        "Maintenance jobs",
        "No job scheduled.",
        &[
            "job", "kind", "schedule", "enabled", "running", "last run", "outcome", "detail",
            "next run",
        ],
        rows,
    );
}

fn monitor_footer(h: &mut String, v: &View) {
    let c = &v.counters;
    let recorded = match &v.not_recorded {
        None => "recorded in pitstop.host_metrics".to_string(),
        Some(why) => format!("not recorded: {why}"),
    };
    let text = format!(
        "monitor: {} rounds, window {} series / {} points, {} rows written, {} dropped, {} write errors; {recorded}",
        c.samples, v.window_series, v.window_points, c.rows_written, c.rows_dropped, c.write_errors
    );
    let _ = writeln!(h, "<footer>{}</footer>", escape(&text));
}

/// The vertical range of a sparkline: from zero (or a lower value) up, so that noise on a
/// steady value does not look like swings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    /// A share: 0 to 1 (or more), shown as percentages.
    Ratio,
    /// 0 to the largest value.
    FromZero,
}

/// An inline SVG polyline of `points` (oldest first) over `scale`; the title gives the values'
/// range. Fewer than two finite points draw nothing.
pub fn sparkline(points: &[f64], scale: Scale) -> String {
    let finite: Vec<f64> = points.iter().copied().filter(|p| p.is_finite()).collect();
    if finite.len() < 2 {
        return String::new();
    }
    let (min, max) = finite
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(*p), hi.max(*p)));
    let (low, high) = (min.min(0.0), if scale == Scale::Ratio { max.max(1.0) } else { max });
    let span = high - low;
    let step = (SPARK_WIDTH - 2.0) / (finite.len() - 1) as f64;
    let coords: Vec<String> = finite
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let up = if span > 0.0 { (p - low) / span } else { 0.0 };
            format!("{:.1},{:.1}", 1.0 + step * i as f64, 1.0 + (SPARK_HEIGHT - 2.0) * (1.0 - up))
        })
        .collect();
    let show = |x: f64| if scale == Scale::Ratio { percent(x) } else { number(x) };
    format!(
        "<svg width=\"{SPARK_WIDTH}\" height=\"{SPARK_HEIGHT}\" viewBox=\"0 0 {SPARK_WIDTH} {SPARK_HEIGHT}\" role=\"img\"><title>{}</title>\
         <polyline fill=\"none\" stroke=\"currentColor\" stroke-width=\"1.5\" points=\"{}\"/></svg>",
        escape(&format!("{} to {} over the window", show(min), show(max))),
        coords.join(" ")
    )
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// A duration in whole seconds, the way humans say it ("1h 2m 3s").
fn age(secs: f64) -> String {
    humantime::format_duration(Duration::from_secs(secs.max(0.0).round() as u64)).to_string()
}

/// A duration: tenths of a second under a minute, else as `age` says it.
pub fn seconds(secs: f64) -> String {
    if secs < 60.0 {
        format!("{secs:.1} s")
    } else {
        age(secs)
    }
}

fn percent(ratio: f64) -> String {
    format!("{:.1}%", ratio * 100.0)
}

/// A value with at most two decimals, trailing zeros dropped.
fn number(x: f64) -> String {
    let text = format!("{x:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Binary units, one decimal.
pub fn bytes(n: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n.max(0.0);
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::monitor::Severity;
    use crate::monitor::alerts::Phase;
    use crate::monitor::sample::Sample;
    use crate::service::state::{Health, MaintenanceRun};

    const EVIL: &str = "<script>alert('x')</script>";

    fn component(state: Health, detail: &str) -> ComponentStatus {
        ComponentStatus { state, since: 1000.0, detail: detail.into() }
    }

    fn page() -> Page {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let alert = Alert {
            rule: EVIL.into(),
            metric: "disk_percent".into(),
            labels: [("mount".to_string(), format!("/mnt/{EVIL}"))].into(),
            severity: Severity::Critical,
            phase: Phase::Firing,
            value: Some(97.5),
            threshold: 90.0,
            summary: format!("disk {EVIL} is full"),
            started_at: at,
            fired_at: Some(at + Duration::from_secs(30)),
            resolved_at: None,
        };
        let samples = vec![
            Sample::new(CPU, 0.25),
            Sample::new(MEM_TOTAL, 8.0 * 1024.0 * 1024.0 * 1024.0),
            Sample::new(MEM_USED, 2.0 * 1024.0 * 1024.0 * 1024.0),
            Sample::new(MEM_RATIO, 0.25),
            Sample::new(SWAP_TOTAL, 0.0),
            Sample::new(LOAD1, 1.5),
            Sample::labelled(DISK_TOTAL, "mount", EVIL, 1e12),
            Sample::labelled(DISK_USED, "mount", EVIL, 5e11),
            Sample::labelled(DISK_RATIO, "mount", EVIL, 0.5),
            Sample::labelled(CONNECTIONS, "state", "active", 3.0),
            Sample::labelled(CONNECTIONS, "state", "idle", 7.0),
            Sample::new(MAX_CONNECTIONS, 100.0),
            Sample::new(CONNECTIONS_RATIO, 0.1),
            Sample::new(TPS, 1234.5),
            Sample::new(CACHE_HIT, 0.999),
            Sample::new(XID_RATIO, 0.05),
            Sample::new(XID_AGE, 107_374_182.0),
        ];
        let monitor = View {
            sampled_at: Some(at + Duration::from_secs(55)),
            samples,
            alerts: vec![alert],
            sparklines: vec![(CPU, vec![0.1, 0.5, 0.25]), (TPS, vec![1.0])],
            ..Default::default()
        };
        let job = MaintenanceJob {
            name: "nightly-vacuum".into(),
            kind: "vacuum",
            schedule: "0 3 * * *".into(),
            enabled: true,
            running: false,
            next_run: Some("2025-01-02T03:00:00Z".into()),
            last_run: Some(MaintenanceRun {
                started_at: "2025-01-01T03:00:00Z".into(),
                outcome: "failed".into(),
                detail: format!("VACUUM \"{EVIL}\": lock timeout"),
            }),
        };
        Page {
            now: 1_060.0,
            uptime: Duration::from_secs(3_723),
            profile: "balanced",
            extension: Some("0.1.0".into()),
            components: vec![
                ("postgres", component(Health::Up, "")),
                ("redis", component(Health::Down, &format!("connection refused {EVIL}"))),
                ("relay", component(Health::Disabled, "no redis")),
                ("monitor", component(Health::Up, "sampling")),
                ("maintenance", component(Health::Up, "1 job")),
            ],
            scrape: metrics::Snapshot {
                version: "0.1.0",
                delivered: 42,
                lag_seconds: 0.4,
                monitor,
                ..Default::default()
            },
            jobs: vec![job],
        }
    }

    #[test]
    fn escape_neutralises_markup_and_quotes() {
        assert_eq!(escape(EVIL), "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;");
        assert_eq!(escape("a & \"b\" <c>"), "a &amp; &quot;b&quot; &lt;c&gt;");
        assert_eq!(
            escape("&lt;"),
            "&amp;lt;",
            "already-escaped text is escaped again, not trusted"
        );
        assert_eq!(escape("plain ünïcode"), "plain ünïcode");
    }

    #[test]
    fn renders_every_part_and_escapes_data() {
        assert!(!render(&page(), false).contains("<nav"), "no links to console pages that are off");
        let html = render(&page(), true);
        assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
        assert!(!html.to_lowercase().contains("<script"), "unescaped script:\n{html}");
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"), "{html}");
        assert!(!html.contains("http://") && !html.contains("https://"), "no external asset");
        for part in [
            "postgres",
            "redis",
            "relay",
            "monitor",
            "maintenance",
            "nightly-vacuum",
            "0 3 * * *",
            "2025-01-02T03:00:00Z",
        ] {
            assert!(html.contains(part), "{part} missing");
        }
        assert!(
            html.contains("version 0.1.0")
                && html.contains("up 1h 2m 3s")
                && html.contains("sampled 5s ago"),
            "{html}"
        );
        assert!(
            html.contains("<span class=\"b critical\">critical</span>")
                && html.contains("<span class=\"b firing\">firing</span>")
        );
        assert!(html.contains("1m ago, firing for 30s"), "alert since");
        assert!(html.contains("97.5 (threshold 90)"));
        assert!(
            html.contains("25.0%")
                && html.contains("2.0 GiB of 8.0 GiB (25.0%)")
                && html.contains("no swap")
        );
        assert!(html.contains("10 of 100 (10.0%) — active 3, idle 7"), "{html}");
        assert!(
            html.contains("1234.5")
                && html.contains("99.9%")
                && html.contains("5.0% (age 107374182)")
        );
        assert!(html.contains("465.7 GiB") && html.contains("931.3 GiB"), "disk sizes");
        assert!(html.contains("<td>42</td>") && html.contains("<td>0.4 s</td>"), "relay");
        assert!(html.contains("<span class=\"b failed\">failed</span>"));
        assert_eq!(html.matches("<svg").count(), 1, "one series with two points or more");
    }

    #[test]
    fn an_empty_daemon_renders_too() {
        let mut p = page();
        p.scrape = metrics::Snapshot::default();
        p.jobs.clear();
        let html = render(&p, false);
        assert!(
            html.contains("not sampled yet")
                && html.contains("No alert is pending or firing.")
                && html.contains("No job scheduled.")
        );
        assert!(html.contains("Not sampled: see the monitor"));
        assert!(!html.contains("<svg"));
    }

    #[test]
    fn sparkline_scales_to_its_range_and_skips_what_cannot_be_drawn() {
        assert_eq!(sparkline(&[], Scale::FromZero), "");
        assert_eq!(sparkline(&[1.0, f64::NAN], Scale::FromZero), "", "one finite point is no line");
        let svg = sparkline(&[0.0, 10.0, 5.0], Scale::FromZero);
        assert!(svg.contains("points=\"1.0,21.0 60.0,1.0 119.0,11.0\""), "{svg}");
        assert!(svg.contains("<title>0 to 10 over the window</title>"));
        let steady = sparkline(&[3.0, 3.0], Scale::FromZero);
        assert!(
            steady.contains("points=\"1.0,1.0 119.0,1.0\""),
            "a steady value is drawn at the top, not mid-way: {steady}"
        );
        let idle = sparkline(&[0.0, 0.0], Scale::FromZero);
        assert!(idle.contains("points=\"1.0,21.0 119.0,21.0\""), "zero is at the bottom: {idle}");
        let ratio = sparkline(&[0.5, 0.25], Scale::Ratio);
        assert!(
            ratio.contains("points=\"1.0,11.0 119.0,16.0\"")
                && ratio.contains("<title>25.0% to 50.0% over the window</title>"),
            "{ratio}"
        );
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(
            (number(2.0), number(0.126), number(1234.5)),
            ("2".into(), "0.13".into(), "1234.5".into())
        );
        assert_eq!(
            (bytes(512.0), bytes(1536.0), bytes(3.0 * 1024.0 * 1024.0 * 1024.0)),
            ("512 B".into(), "1.5 KiB".into(), "3.0 GiB".into())
        );
        assert_eq!((seconds(0.26), seconds(3_700.0)), ("0.3 s".into(), "1h 1m 40s".into()));
    }
}
