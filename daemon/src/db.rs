//! Connecting the way psql does, for the command line and the daemon alike: flags and
//! connection string, service file, PG* environment, defaults (`conninfo`); TLS with libpq's
//! sslmode semantics (`tls`); the password from the password file.

pub mod conninfo;
pub mod tls;

use anyhow::{Context, Result};
use conninfo::{Explicit, Params};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;
use tls::TlsSettings;
use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config};

/// What bounds every CLI session besides its statement timeout: reports must never hold up
/// a production server.
const CLI_BOUNDS: &str = "-c lock_timeout=2s -c idle_in_transaction_session_timeout=60s";

/// The CLI's statement timeout when neither a flag nor the configuration says otherwise.
pub const CLI_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and how to connect: the driver's settings and the TLS settings.
#[derive(Debug, Clone)]
pub struct Target {
    pub config: Config,
    pub tls: TlsSettings,
    /// Whether `open` pins the session's search_path (`PIN_SEARCH_PATH`): every session but
    /// bench's, which run only the user's own scripts.
    pub pin_search_path: bool,
}

/// The first statement of every daemon and CLI session: from then on an unqualified name finds
/// only pg_catalog's functions, operators and types (and the session's own temporary tables),
/// never an overload that whoever may create objects in `public` planted there (CVE-2018-1058).
///
/// A statement and not `-c search_path=…` in the session options: options would become the
/// session's reset value as well, and the reset value is what the user's own statement text
/// (`report advice`, `report indexes --query`) and the extension's planning of another role's
/// statement (sql/queries/role_search_path.sql) resolve names with.
const PIN_SEARCH_PATH: &str =
    "SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false)";

/// The search_path the session would have without the pin: its reset value (the role's and
/// database's settings, PGOPTIONS, else the server's), with pg_catalog put first. Whoever
/// owns the database sets that value (`ALTER DATABASE … SET search_path = public, pg_catalog`),
/// and with pg_catalog after `public` an operator or type of the same name there
/// (`public.=(name, name)`, a domain `public.text`) would stand in for pg_catalog's in our own
/// part of the statement; first, pg_catalog's win every exact match, as in the default path.
/// Our part of the statement still calls nothing that an overload could match better.
const USERS_SEARCH_PATH: &str = "SELECT pg_catalog.set_config('search_path', \
     CASE WHEN s.reset_val = '' THEN 'pg_catalog' ELSE 'pg_catalog, ' || s.reset_val END, false) \
     FROM pg_catalog.pg_settings s WHERE s.name = 'search_path'";

/// Session options of a CLI session: `statement_timeout` (None: no limit) and the fixed
/// bounds, then whatever the connection string or PGOPTIONS asked for (later wins).
pub fn cli_session_options(
    statement_timeout: Option<Duration>,
    user_options: Option<&str>,
) -> String {
    let timeout = statement_timeout.map_or(0, |t| t.as_millis().max(1));
    with_user_options(format!("-c statement_timeout={timeout}ms {CLI_BOUNDS}"), user_options)
}

fn with_user_options(ours: String, user_options: Option<&str>) -> String {
    match user_options.map(str::trim).filter(|o| !o.is_empty()) {
        Some(theirs) => format!("{ours} {theirs}"),
        None => ours,
    }
}

/// A CLI session's settings: `explicit`, else the libpq environment, service file and
/// password file, bounded by `statement_timeout`.
pub fn cli_target(
    explicit: &Explicit<'_>,
    statement_timeout: Option<Duration>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Target> {
    let params = conninfo::gather(explicit, env)?;
    let mut target = target_of(&params, env)?;
    if target.config.get_connect_timeout().is_none() {
        target.config.connect_timeout(Duration::from_secs(10));
    }
    if target.config.get_application_name().is_none() {
        target.config.application_name("pitstop-cli");
    }
    target
        .config
        .options(cli_session_options(statement_timeout, params.get("options").map(String::as_str)));
    Ok(target)
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

/// The daemon's settings: its configured DSN (else the libpq environment), no session
/// options or timeouts yet.
pub fn daemon_target(dsn: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Result<Target> {
    let params = conninfo::gather(&Explicit { dsn, ..Default::default() }, env)?;
    target_of(&params, env)
}

/// The driver's configuration and the TLS settings of gathered `params`, with the password
/// from the password file when none was given.
fn target_of(params: &Params, env: &dyn Fn(&str) -> Option<String>) -> Result<Target> {
    let mut config: Config =
        conninfo::driver_conninfo(params).parse().context("invalid connection settings")?;
    let tls = TlsSettings::from_params(params, env("HOME").map(PathBuf::from).as_deref())?;
    // libpq never tries TLS over a Unix socket.
    let unix_only = config.get_hostaddrs().is_empty()
        && config.get_hosts().iter().all(|h| !matches!(h, Host::Tcp(_)));
    config.ssl_mode(if unix_only {
        tokio_postgres::config::SslMode::Disable
    } else {
        tls.mode.driver()
    });
    if config.get_password().is_none() {
        let password = conninfo::passfile(params, env)
            .and_then(|path| conninfo::read_passfile(&path))
            .and_then(|contents| {
                let host = match config.get_hosts().first()? {
                    Host::Tcp(h) => h.clone(),
                    Host::Unix(_) => "localhost".to_string(),
                };
                let port = config.get_ports().first().copied().unwrap_or(5432).to_string();
                pgpass_lookup(&contents, &host, &port, config.get_dbname()?, config.get_user()?)
            });
        if let Some(password) = password {
            config.password(password);
        }
    }
    Ok(Target { config, tls, pin_search_path: true })
}

pub type Connection = tokio_postgres::Connection<tokio_postgres::Socket, tls::Stream>;

/// Connects, and pins the search_path unless the target says not to; the flag says whether
/// the session is encrypted.
pub async fn open(target: &Target) -> Result<(Client, Connection, bool)> {
    let connector = target.tls.connector()?;
    let (client, mut connection) = target
        .config
        .connect(connector.clone())
        .await
        .map_err(|e| anyhow::anyhow!(describe_connect_error(&e, &target.tls)))
        .context("cannot connect to PostgreSQL")?;
    if target.pin_search_path {
        while_driving(&mut connection, client.batch_execute(PIN_SEARCH_PATH))
            .await
            .context("cannot pin the session's search_path")?;
    }
    Ok((client, connection, connector.used()))
}

/// `work` on a session whose connection nobody drives yet, driving it meanwhile (whatever the
/// server sends besides results is dropped).
async fn while_driving<T>(
    connection: &mut Connection,
    work: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T> {
    use std::task::Poll;
    tokio::pin!(work);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(result) = work.as_mut().poll(cx) {
            return Poll::Ready(result.map_err(anyhow::Error::from));
        }
        loop {
            match connection.poll_message(cx) {
                Poll::Ready(Some(Ok(_))) => continue,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e.into())),
                Poll::Ready(None) => {
                    return Poll::Ready(Err(anyhow::anyhow!("the server closed the connection")))
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await
}

/// Gives the whole session the search_path it would have had without the pin: for a session
/// that runs nothing but statements over the user's own SQL text or workload (the advisor's),
/// whose own text names everything with its schema.
pub async fn use_users_search_path(client: &Client) -> Result<(), tokio_postgres::Error> {
    client.batch_execute(USERS_SEARCH_PATH).await
}

/// Runs `work`, a statement over the user's own SQL text or workload (the advisor's), with
/// the search_path the user's session would have had (`USERS_SEARCH_PATH`), then pins the
/// path again. The statement's own text must name everything with its schema.
pub async fn with_users_search_path<T>(
    client: &Client,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    client.batch_execute(USERS_SEARCH_PATH).await.context("cannot set the user's search_path")?;
    let result = work.await;
    let pinned = client.batch_execute(PIN_SEARCH_PATH).await;
    let value = result?;
    pinned.context("cannot pin the session's search_path again")?;
    Ok(value)
}

/// A connection failure with the TLS problem named (a certificate error hides two levels deep).
fn describe_connect_error(error: &tokio_postgres::Error, tls: &TlsSettings) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    if text.contains("certificate") || text.contains("Certificate") {
        text.push_str(&format!(" [{}]", tls.describe()));
    }
    text
}

/// Asks the server to cancel `client`'s running statement. Over TLS when the session's
/// sslmode asks for it (a server may accept nothing else), the certificate not checked: the
/// request carries only the backend's pid and cancel key, which libpq sends in plaintext.
pub async fn cancel(client: &Client) {
    let connector =
        TlsSettings { mode: tls::SslMode::Require, verify: tls::Verify::Nothing, client: None }
            .connector();
    match connector {
        Ok(connector) => {
            if let Err(e) = client.cancel_token().cancel_query(connector).await {
                tracing::debug!("cancel request failed: {e}");
            }
        }
        Err(e) => tracing::debug!("cancel request: {e:#}"),
    }
}

/// A daemon session: the configured DSN (else the libpq environment and ~/.pgpass), the
/// configured timeouts, and TCP keepalives so that a vanished server is noticed while idle.
/// The caller drives the returned connection.
pub async fn connect_daemon(
    pg: &crate::config::PostgresConfig,
    application_name: &str,
) -> Result<(Client, Connection)> {
    let env = |name: &str| std::env::var(name).ok();
    let params = conninfo::gather(&Explicit { dsn: pg.dsn.expose(), ..Default::default() }, &env)?;
    let mut target = target_of(&params, &env)?;
    if target.config.get_connect_timeout().is_none() {
        target.config.connect_timeout(pg.connect_timeout);
    }
    target.config.application_name(application_name);
    let ours = daemon_session_options(pg.statement_timeout, pg.lock_timeout);
    target.config.options(with_user_options(ours, params.get("options").map(String::as_str)));
    target.config.keepalives_idle(Duration::from_secs(30));
    target.config.keepalives_interval(Duration::from_secs(10));
    target.config.keepalives_retries(3);
    let (client, connection, encrypted) = open(&target).await?;
    log_tls_change(application_name, encrypted, &target.tls);
    Ok((client, connection))
}

/// Logs whether a daemon part's session is encrypted, when it differs from its last one.
fn log_tls_change(part: &str, encrypted: bool, tls: &TlsSettings) {
    static LAST: Mutex<Option<HashMap<String, bool>>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    if last.get_or_insert_with(HashMap::new).insert(part.to_string(), encrypted) != Some(encrypted)
    {
        let how = if encrypted { "TLS" } else { "no TLS (plaintext)" };
        tracing::info!("postgres: {part} connected with {how}; {}", tls.describe());
    }
}

/// Drives a daemon session's connection in a task of its own. The token is cancelled when
/// the connection ends; abort the handle to close it.
pub fn drive(
    connection: Connection,
) -> (tokio_util::sync::CancellationToken, tokio::task::JoinHandle<()>) {
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

/// A CLI session, its connection driven in a task of its own.
pub async fn connect(target: &Target) -> Result<Client> {
    let (client, connection, _) = open(target).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("connection error: {e}");
        }
    });
    Ok(client)
}

/// What the server sent a CLI session besides results (NOTICE, WARNING, … while a statement
/// runs), oldest first.
pub type Notices = tokio::sync::mpsc::Receiver<tokio_postgres::error::DbError>;

/// Notices kept while nobody reads them; more are dropped.
const NOTICES_KEPT: usize = 1024;

/// `connect`, with the session's notices handed to the returned channel as they arrive. The
/// connection task forwards a statement's notices before it delivers that statement's result,
/// so once a statement has returned, its notices are in the channel.
pub async fn connect_with_notices(target: &Target) -> Result<(Client, Notices)> {
    let (client, connection, _) = open(target).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(NOTICES_KEPT);
    tokio::spawn(async move {
        let keep = |notice| {
            let _ = tx.try_send(notice);
        };
        if let Err(e) = drive_with_notices(connection, keep).await {
            eprintln!("connection error: {e}");
        }
    });
    Ok((client, rx))
}

/// Drives `connection` until it ends, handing each notice the server sends to `notice`
/// (tokio-postgres gives them only to whoever drives the connection); the error that ended
/// it, if one did.
pub async fn drive_with_notices<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    mut notice: impl FnMut(tokio_postgres::error::DbError),
) -> Result<(), tokio_postgres::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
        if let tokio_postgres::AsyncMessage::Notice(n) = message? {
            notice(n);
        }
    }
    Ok(())
}

/// The password of the first ~/.pgpass line matching (`*` matches anything; `\:` and `\\`
/// are escapes), as libpq reads it.
pub fn pgpass_lookup(
    contents: &str,
    host: &str,
    port: &str,
    db: &str,
    user: &str,
) -> Option<String> {
    contents.lines().filter(|l| !l.trim_start().starts_with('#')).find_map(|line| {
        let fields = split_pgpass_line(line);
        let [h, p, d, u, password] = fields.as_slice() else { return None };
        let matches = |pattern: &str, value: &str| pattern == "*" || pattern == value;
        (matches(h, host) && matches(p, port) && matches(d, db) && matches(u, user))
            .then(|| password.clone())
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

/// An error as psql would show it: ERROR/DETAIL/HINT lines for server errors; printable
/// (server messages quote names, in which any role may put terminal escapes).
pub fn describe_error(error: &anyhow::Error) -> String {
    crate::output::printable(&describe_error_raw(error))
}

fn describe_error_raw(error: &anyhow::Error) -> String {
    for cause in error.chain() {
        if let Some(db) =
            cause.downcast_ref::<tokio_postgres::Error>().and_then(|e| e.as_db_error())
        {
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
    use super::conninfo::env_of;
    use super::*;

    fn cli(dsn: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Result<Config> {
        cli_target(&Explicit { dsn, ..Default::default() }, Some(CLI_STATEMENT_TIMEOUT), env)
            .map(|t| t.config)
    }

    #[test]
    fn libpq_variables_are_used_without_a_dsn() {
        let env = env_of(&[
            ("PGHOST", "db.local"),
            ("PGPORT", "6543"),
            ("PGUSER", "alice"),
            ("PGDATABASE", "shop"),
        ]);
        let config = cli(None, &env).unwrap();
        assert_eq!(config.get_ports(), [6543]);
        assert_eq!(config.get_user(), Some("alice"));
        assert_eq!(config.get_dbname(), Some("shop"));
        assert_eq!(config.get_application_name(), Some("pitstop-cli"));
        assert_eq!(config.get_options(), Some("-c statement_timeout=30000ms -c lock_timeout=2s -c idle_in_transaction_session_timeout=60s"));
        assert_eq!(config.get_ssl_mode(), tokio_postgres::config::SslMode::Prefer);
    }

    #[test]
    fn pgoptions_and_pgappname_reach_the_session_after_our_bounds() {
        let env =
            env_of(&[("PGHOST", "h"), ("PGOPTIONS", "-c work_mem=64MB"), ("PGAPPNAME", "mine")]);
        let target = cli_target(&Explicit::default(), None, &env).unwrap();
        assert_eq!(
            target.config.get_options(),
            Some("-c statement_timeout=0ms -c lock_timeout=2s -c idle_in_transaction_session_timeout=60s -c work_mem=64MB")
        );
        assert_eq!(target.config.get_application_name(), Some("mine"));
    }

    #[test]
    fn flags_override_dsn_and_environment() {
        let env = env_of(&[("PGHOST", "envhost"), ("PGUSER", "alice"), ("PGSSLMODE", "disable")]);
        let explicit = Explicit {
            dsn: Some("host=dsnhost port=7000 dbname=app"),
            host: Some("flaghost"),
            port: Some("7001"),
            user: Some("bob"),
            dbname: Some("other"),
        };
        let target = cli_target(&explicit, None, &env).unwrap();
        assert_eq!(target.config.get_hosts(), [Host::Tcp("flaghost".into())]);
        assert_eq!(target.config.get_ports(), [7001]);
        assert_eq!(target.config.get_user(), Some("bob"));
        assert_eq!(target.config.get_dbname(), Some("other"));
        assert_eq!(target.tls.mode, tls::SslMode::Disable);
        assert_eq!(target.config.get_ssl_mode(), tokio_postgres::config::SslMode::Disable);
    }

    #[test]
    fn verify_modes_reach_the_driver_as_require_and_unix_sockets_never_use_tls() {
        let env = env_of(&[]);
        let target =
            daemon_target(Some("host=db sslmode=verify-full sslrootcert=/ca.pem"), &env).unwrap();
        assert_eq!(target.config.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
        assert_eq!(target.tls.mode, tls::SslMode::VerifyFull);
        let target = daemon_target(Some("host=/run/postgresql sslmode=require"), &env).unwrap();
        assert_eq!(target.config.get_ssl_mode(), tokio_postgres::config::SslMode::Disable);
    }

    #[test]
    fn daemon_sessions_are_bounded_by_the_configured_timeouts() {
        let options = daemon_session_options(Duration::from_secs(5), Duration::from_millis(1500));
        assert_eq!(options, "-c statement_timeout=5000ms -c lock_timeout=1500ms -c idle_in_transaction_session_timeout=20000ms");
    }

    #[test]
    fn bad_port_and_bad_dsn_are_errors() {
        assert!(cli(None, &env_of(&[("PGPORT", "five")])).is_err());
        assert!(cli(Some("host=x port=notaport"), &env_of(&[])).is_err());
    }

    #[test]
    fn dsn_wins_over_environment() {
        let config =
            cli(Some("postgres://bob@h:7000/app"), &env_of(&[("PGUSER", "alice")])).unwrap();
        assert_eq!(config.get_user(), Some("bob"));
        assert_eq!(config.get_ports(), [7000]);
    }

    #[test]
    fn password_comes_from_a_private_passfile_only() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("pitstop-db-pgpass-{}", std::process::id()));
        std::fs::write(&path, "h:5432:app:bob:secret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let env = env_of(&[("PGPASSFILE", path.to_str().unwrap())]);
        let config = cli(Some("host=h dbname=app user=bob"), &env).unwrap();
        assert_eq!(config.get_password(), Some(&b"secret"[..]));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(cli(Some("host=h dbname=app user=bob"), &env).unwrap().get_password(), None);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn described_errors_carry_no_terminal_escapes() {
        let error = anyhow::anyhow!(
            "relation \"x\u{1b}]52;c;cm0gLXJm\u{7}\u{1b}[2J\u{202E}\" does not exist"
        );
        let text = describe_error(&error);
        assert!(!text.chars().any(|c| c.is_control() || c == '\u{202E}'), "{text:?}");
        assert!(text.starts_with("error: relation \"x\u{FFFD}]52;c;"), "{text:?}");
    }

    #[test]
    fn pgpass_matches_like_libpq() {
        let file = "# comment\nother:5432:*:*:nope\nh:5432:app:bob:se\\:cret\n*:*:*:*:fallback\n";
        assert_eq!(pgpass_lookup(file, "h", "5432", "app", "bob").as_deref(), Some("se:cret"));
        assert_eq!(pgpass_lookup(file, "z", "1", "d", "u").as_deref(), Some("fallback"));
        assert_eq!(pgpass_lookup("h:5432:app:bob:x\n", "h", "5432", "app", "eve"), None);
    }
}
