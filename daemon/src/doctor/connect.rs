//! Doctor's session: connected as the other commands connect (flags, DSN, service file, PG*
//! variables, ~/.pgpass), read-only and with short timeouts; a failure is the `connection`
//! check, worded as libpq words it, with a hint.

use super::Check;
use crate::db::{self, conninfo::Explicit, Target};
use std::time::Duration;
use tokio_postgres::config::Host;
use tokio_postgres::Client;

pub const CHECK: &str = "connection";

/// Each of doctor's statements is a catalog read: anything slower is a problem in itself.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Session {
    pub client: Client,
    pub target: Target,
    pub check: Check,
}

/// The CLI's settings (lock_timeout included), a short statement_timeout, and a read-only
/// session so that doctor cannot write by accident.
fn session_target(
    explicit: &Explicit<'_>,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Target> {
    let mut target = db::cli_target(explicit, Some(STATEMENT_TIMEOUT), env)?;
    let options = format!(
        "{} -c default_transaction_read_only=on",
        target.config.get_options().unwrap_or_default()
    );
    target.config.options(options.trim());
    Ok(target)
}

pub async fn connect(
    explicit: &Explicit<'_>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Session, Check> {
    let target = session_target(explicit, env).map_err(|e| {
        Check::failed(
            CHECK,
            format!("invalid connection settings: {e:#}"),
            "correct the connection flags (-h -p -U -d, --dsn) or the PG* variables",
        )
    })?;
    let server = describe_server(&target);
    match db::open(&target).await {
        Ok((client, connection, _)) => {
            tokio::spawn(async move {
                let _ = connection.await;
            });
            let who = format!(
                "{server}, database {:?} as role {:?}",
                target.config.get_dbname().unwrap_or("?"),
                target.config.get_user().unwrap_or("?")
            );
            Ok(Session { client, check: Check::ok(CHECK, format!("connected to {who}")), target })
        }
        Err(e) => {
            let error = format!("{:#}", e);
            // The driver's wrapping, which libpq's messages do not have.
            let error = error.strip_prefix("cannot connect to PostgreSQL: ").unwrap_or(&error);
            let error = error
                .strip_prefix("error connecting to server: ")
                .or_else(|| error.strip_prefix("db error: "))
                .unwrap_or(error);
            Err(Check::failed(
                CHECK,
                format!("connection to {server} failed: {error}"),
                hint(error),
            ))
        }
    }
}

/// "server at "h", port p" or "server on socket "/dir/.s.PGSQL.p"", as libpq says it.
fn describe_server(target: &Target) -> String {
    let port = target.config.get_ports().first().copied().unwrap_or(5432);
    match target.config.get_hosts().first() {
        Some(Host::Tcp(h)) => format!("server at \"{h}\", port {port}"),
        Some(Host::Unix(dir)) => format!("server on socket \"{}/.s.PGSQL.{port}\"", dir.display()),
        None => format!("server on port {port}"),
    }
}

/// What to look at for a connection error (libpq's hints where it has one).
fn hint(error: &str) -> String {
    let has = |s: &str| error.contains(s);
    if has("Connection refused") || has("No such file or directory") {
        "Is the server running on that host and accepting connections? Check the host and port (-h/-p, PGHOST/PGPORT, the DSN)".into()
    } else if has("password authentication failed") || has("no password") || has("password missing")
    {
        "check the user name (-U, PGUSER) and the password (PGPASSWORD, ~/.pgpass with mode 0600, the DSN)".into()
    } else if has("no pg_hba.conf entry") {
        "add a pg_hba.conf line for this role, database and address on the server (then SELECT pg_reload_conf()), or connect with sslmode=require if only hostssl lines match".into()
    } else if has("database") && has("does not exist") {
        "connect to an existing database (-d, PGDATABASE): the one pitstop is installed in".into()
    } else if has("role") && has("does not exist") {
        "connect as an existing role (-U, PGUSER), or CREATE ROLE … LOGIN".into()
    } else if has("certificate") || has("Certificate") || has("TLS") || has("tls") || has("ssl") {
        "check sslmode and sslrootcert (the CA that signed the server's certificate; verify-full also needs a host name the certificate names)".into()
    } else if has("timed out") || has("timeout") {
        "the server did not answer in time: check the host, port, firewall and connect_timeout"
            .into()
    } else {
        "check the connection settings (-h -p -U -d, --dsn, PG* variables) and the server's log"
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_name_what_to_check() {
        assert!(hint("error connecting to server: Connection refused (os error 111)")
            .starts_with("Is the server running"));
        assert!(hint("db error: FATAL: password authentication failed for user \"x\"")
            .contains("~/.pgpass"));
        assert!(hint("db error: FATAL: database \"nope\" does not exist").contains("-d"));
        assert!(hint("db error: FATAL: no pg_hba.conf entry for host").contains("pg_hba.conf"));
        assert!(hint("invalid peer certificate: UnknownIssuer").contains("sslrootcert"));
    }

    #[test]
    fn the_session_is_read_only_and_bounded() {
        let target =
            session_target(&Explicit { host: Some("db"), ..Default::default() }, &|_| None)
                .unwrap();
        assert_eq!(
            target.config.get_options(),
            Some("-c statement_timeout=5000ms -c lock_timeout=2s -c idle_in_transaction_session_timeout=60s -c default_transaction_read_only=on")
        );
    }

    #[test]
    fn servers_are_described_as_libpq_does() {
        let env = |name: &str| match name {
            "PGHOST" => Some("/run/postgresql".to_string()),
            "PGPORT" => Some("5433".to_string()),
            _ => None,
        };
        let target = db::cli_target(&Explicit::default(), None, &env).unwrap();
        assert_eq!(describe_server(&target), "server on socket \"/run/postgresql/.s.PGSQL.5433\"");
        let target =
            db::cli_target(&Explicit { host: Some("db"), ..Default::default() }, None, &env)
                .unwrap();
        assert_eq!(describe_server(&target), "server at \"db\", port 5433");
    }
}
