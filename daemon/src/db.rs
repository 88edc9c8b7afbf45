//! Connecting the way psql does: an explicit DSN, else the libpq environment and ~/.pgpass.

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::time::Duration;
use tokio_postgres::{Client, Config, NoTls};

/// Every CLI session bounds what it runs: reports must never hold up a production server.
const SESSION_OPTIONS: &str = "-c statement_timeout=30s -c lock_timeout=2s -c idle_in_transaction_session_timeout=60s";

/// The connection settings from `dsn`, else from the libpq environment variables.
pub fn config(dsn: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Result<Config> {
    let mut config = config_with(dsn, env)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    config.application_name("pitstop-cli");
    config.options(SESSION_OPTIONS);
    Ok(config)
}

/// Session options bounding every statement of a daemon session.
pub fn daemon_session_options(statement_timeout: Duration, lock_timeout: Duration) -> String {
    format!(
        "-c statement_timeout={}ms -c lock_timeout={}ms -c idle_in_transaction_session_timeout={}ms",
        statement_timeout.as_millis().max(1),
        lock_timeout.as_millis().max(1),
        (statement_timeout * 4).as_millis().max(10_000)
    )
}

/// `dsn` or the libpq environment and ~/.pgpass; no session options or timeouts.
pub fn config_with(dsn: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Result<Config> {
    let mut config = match dsn {
        Some(dsn) => dsn.parse::<Config>().context("invalid --dsn connection string")?,
        None => {
            let mut config = Config::new();
            let user = env("PGUSER").or_else(|| env("USER")).unwrap_or_else(|| "postgres".into());
            config.host(env("PGHOST").as_deref().unwrap_or("/var/run/postgresql"));
            if let Some(port) = env("PGPORT") {
                config.port(port.parse().with_context(|| format!("PGPORT is not a port: {port}"))?);
            }
            config.dbname(env("PGDATABASE").as_deref().unwrap_or(&user));
            config.user(&user);
            if let Some(password) = env("PGPASSWORD") {
                config.password(password);
            }
            config
        }
    };
    if config.get_password().is_none() {
        if let Some(password) = pgpass_password(&config, env) {
            config.password(password);
        }
    }
    Ok(config)
}

pub type Connection = tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>;

/// A daemon session: the configured DSN (else the libpq environment and ~/.pgpass), the
/// configured timeouts, and TCP keepalives so that a vanished server is noticed while idle.
/// The caller drives the returned connection.
pub async fn connect_daemon(pg: &crate::config::PostgresConfig, application_name: &str) -> Result<(Client, Connection)> {
    let mut config = config_with(pg.dsn.expose(), &|name| std::env::var(name).ok())?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(pg.connect_timeout);
    }
    config.application_name(application_name);
    config.options(daemon_session_options(pg.statement_timeout, pg.lock_timeout));
    config.keepalives_idle(Duration::from_secs(30));
    config.keepalives_interval(Duration::from_secs(10));
    config.keepalives_retries(3);
    config.connect(NoTls).await.context("cannot connect to PostgreSQL")
}

/// Drives a daemon session's connection in a task of its own. The token is cancelled when
/// the connection ends; abort the handle to close it.
pub fn drive(connection: Connection) -> (tokio_util::sync::CancellationToken, tokio::task::JoinHandle<()>) {
    let closed = tokio_util::sync::CancellationToken::new();
    let driver = tokio::spawn({
        let closed = closed.clone();
        async move {
            let _ = connection.await;
            closed.cancel();
        }
    });
    (closed, driver)
}

pub async fn connect(dsn: Option<&str>) -> Result<Client> {
    let config = config(dsn, &|name| std::env::var(name).ok())?;
    let (client, connection) = config.connect(NoTls).await.context("cannot connect to PostgreSQL")?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("connection error: {e}");
        }
    });
    Ok(client)
}

fn pgpass_password(config: &Config, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let path = env("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|home| PathBuf::from(home).join(".pgpass")))?;
    let contents = std::fs::read_to_string(path).ok()?;
    let host = match config.get_hosts().first()? {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        #[cfg(unix)]
        tokio_postgres::config::Host::Unix(_) => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432).to_string();
    pgpass_lookup(&contents, &host, &port, config.get_dbname()?, config.get_user()?)
}

/// The password of the first ~/.pgpass line matching (`*` matches anything; `\:` and `\\`
/// are escapes), as libpq reads it.
pub fn pgpass_lookup(contents: &str, host: &str, port: &str, db: &str, user: &str) -> Option<String> {
    contents.lines().filter(|l| !l.trim_start().starts_with('#')).find_map(|line| {
        let fields = split_pgpass_line(line);
        let [h, p, d, u, password] = fields.as_slice() else { return None };
        let matches = |pattern: &str, value: &str| pattern == "*" || pattern == value;
        (matches(h, host) && matches(p, port) && matches(d, db) && matches(u, user)).then(|| password.clone())
    })
}

fn split_pgpass_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut().unwrap().extend(chars.next()),
            ':' if fields.len() < 5 => fields.push(String::new()),
            _ => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

/// A driver error on one line: the server's message and SQLSTATE, or the client-side cause.
pub fn describe_pg(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => error.to_string(),
    }
}

/// An error as psql would show it: ERROR/DETAIL/HINT lines for server errors.
pub fn describe_error(error: &anyhow::Error) -> String {
    for cause in error.chain() {
        if let Some(db) = cause.downcast_ref::<tokio_postgres::Error>().and_then(|e| e.as_db_error()) {
            let mut text = format!("ERROR:  {} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                text.push_str(&format!("\nDETAIL:  {detail}"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!("\nHINT:  {hint}"));
            }
            return text;
        }
    }
    format!("error: {error:#}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn libpq_variables_are_used_without_a_dsn() {
        let env = env_of(&[("PGHOST", "db.local"), ("PGPORT", "6543"), ("PGUSER", "alice"), ("PGDATABASE", "shop")]);
        let config = config(None, &env).unwrap();
        assert_eq!(config.get_ports(), [6543]);
        assert_eq!(config.get_user(), Some("alice"));
        assert_eq!(config.get_dbname(), Some("shop"));
        assert_eq!(config.get_options(), Some(SESSION_OPTIONS));
    }

    #[test]
    fn daemon_sessions_are_bounded_by_the_configured_timeouts() {
        let options = daemon_session_options(Duration::from_secs(5), Duration::from_millis(1500));
        assert_eq!(options, "-c statement_timeout=5000ms -c lock_timeout=1500ms -c idle_in_transaction_session_timeout=20000ms");
    }

    #[test]
    fn bad_port_and_bad_dsn_are_errors() {
        assert!(config(None, &env_of(&[("PGPORT", "five")])).is_err());
        assert!(config(Some("host=x port=notaport"), &env_of(&[])).is_err());
    }

    #[test]
    fn dsn_wins_over_environment() {
        let config = config(Some("postgres://bob@h:7000/app"), &env_of(&[("PGUSER", "alice")])).unwrap();
        assert_eq!(config.get_user(), Some("bob"));
        assert_eq!(config.get_ports(), [7000]);
    }

    #[test]
    fn pgpass_matches_like_libpq() {
        let file = "# comment\nother:5432:*:*:nope\nh:5432:app:bob:se\\:cret\n*:*:*:*:fallback\n";
        assert_eq!(pgpass_lookup(file, "h", "5432", "app", "bob").as_deref(), Some("se:cret"));
        assert_eq!(pgpass_lookup(file, "z", "1", "d", "u").as_deref(), Some("fallback"));
        assert_eq!(pgpass_lookup("h:5432:app:bob:x\n", "h", "5432", "app", "eve"), None);
    }
}
