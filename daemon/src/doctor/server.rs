//! The server and database checks: version, TLS on this session, the preloaded libraries, the
//! pitstop extension and pg_stat_statements. The facts are read in two statements; each check
//! is a pure function of them.

use super::{preload, Check};
use crate::db::tls::{SslMode, TlsSettings, Verify};
use crate::extension_version;
use tokio_postgres::Client;

pub const CHECKS: &[&str] =
    &["server_version", "tls", "shared_preload_libraries", "extension", "pg_stat_statements"];

/// Major versions this release supports.
pub const SUPPORTED: &[i32] = &[15, 17, 18];

/// Libraries pitstop needs preloaded (pitstop's hooks and shared memory; pg_stat_statements for
/// the workload reports, the advisor and snapshots).
const LIBRARIES: &[&str] = &["pg_stat_statements", "pitstop"];

/// Works on any server from 10 on, so that an old one still gets its version check. Only
/// superusers and pg_read_all_settings may read shared_preload_libraries; whether a library
/// is preloaded shows to everyone as its settings being defined in this fresh session (both
/// libraries define theirs only when preloaded, and nothing here loads pitstop).
const FACTS: &str = "SELECT current_setting('server_version_num')::int, current_setting('server_version'), \
       CASE WHEN pg_catalog.pg_has_role('pg_read_all_settings', 'USAGE') THEN current_setting('shared_preload_libraries') END, \
       coalesce((SELECT pending_restart FROM pg_catalog.pg_settings WHERE name = 'shared_preload_libraries'), false), \
       (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pitstop'), \
       (SELECT default_version FROM pg_catalog.pg_available_extensions WHERE name = 'pitstop'), \
       (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pg_stat_statements'), \
       EXISTS (SELECT FROM pg_catalog.pg_available_extensions WHERE name = 'pg_stat_statements'), \
       coalesce(s.ssl, false), s.version, s.cipher, current_setting('ssl'), pg_catalog.inet_server_addr() IS NULL, \
       current_user::text, pg_catalog.quote_ident(current_user::text), current_database()::text, \
       EXISTS (SELECT FROM pg_catalog.pg_settings WHERE name LIKE 'pitstop.%'), \
       EXISTS (SELECT FROM pg_catalog.pg_settings WHERE name LIKE 'pg\\_stat\\_statements.%') \
  FROM (SELECT 1) one LEFT JOIN pg_catalog.pg_stat_ssl s ON s.pid = pg_catalog.pg_backend_pid()";

/// From 14 on: whether this very statement got a query id.
const QUERY_ID: &str = "SELECT current_setting('compute_query_id'), \
       (SELECT query_id FROM pg_catalog.pg_stat_activity WHERE pid = pg_catalog.pg_backend_pid())";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub version_num: i32,
    pub version: String,
    /// shared_preload_libraries, when this role may read it.
    pub preload: Option<String>,
    pub pitstop_loaded: bool,
    pub pgss_loaded: bool,
    pub preload_pending_restart: bool,
    pub pitstop_installed: Option<String>,
    pub pitstop_available: Option<String>,
    pub pgss_installed: Option<String>,
    pub pgss_available: bool,
    pub ssl: bool,
    pub tls_version: Option<String>,
    pub cipher: Option<String>,
    pub server_ssl: String,
    pub unix_socket: bool,
    pub role: String,
    /// The role as an identifier for GRANT statements.
    pub role_ident: String,
    pub database: String,
    pub compute_query_id: Option<String>,
    pub query_id: Option<i64>,
}

impl Facts {
    pub async fn read(client: &Client) -> Result<Facts, String> {
        let describe = |e: tokio_postgres::Error| crate::db::describe_pg(&e);
        let r = client.query_one(FACTS, &[]).await.map_err(describe)?;
        let mut facts = Facts {
            version_num: r.get(0),
            version: r.get(1),
            preload: r.get(2),
            preload_pending_restart: r.get(3),
            pitstop_installed: r.get(4),
            pitstop_available: r.get(5),
            pgss_installed: r.get(6),
            pgss_available: r.get(7),
            ssl: r.get(8),
            tls_version: r.get(9),
            cipher: r.get(10),
            server_ssl: r.get(11),
            unix_socket: r.get(12),
            role: r.get(13),
            role_ident: r.get(14),
            database: r.get(15),
            pitstop_loaded: r.get(16),
            pgss_loaded: r.get(17),
            ..Facts::default()
        };
        if facts.version_num >= 140000 {
            let r = client.query_one(QUERY_ID, &[]).await.map_err(describe)?;
            facts.compute_query_id = r.get(0);
            facts.query_id = r.get(1);
        }
        Ok(facts)
    }

    pub fn major(&self) -> i32 {
        self.version_num / 10000
    }
}

pub fn checks(facts: &Result<Facts, String>, tls: &TlsSettings) -> Vec<Check> {
    match facts {
        Ok(f) => {
            vec![version(f), tls_check(f, tls), preloaded(f), extension(f), pg_stat_statements(f)]
        }
        Err(e) => CHECKS
            .iter()
            .map(|name| {
                Check::failed(
                    name,
                    format!("cannot read the server's settings: {e}"),
                    "see the error; doctor needs only the catalogs every role can read",
                )
            })
            .collect(),
    }
}

fn version(f: &Facts) -> Check {
    let name = "server_version";
    let supported = SUPPORTED.iter().map(i32::to_string).collect::<Vec<_>>().join(", ");
    if SUPPORTED.contains(&f.major()) {
        Check::ok(name, format!("PostgreSQL {}", f.version))
    } else {
        Check::failed(
            name,
            format!("PostgreSQL {} is not supported", f.version),
            format!("run pitstop on PostgreSQL {supported} (pg_upgrade to one of them)"),
        )
    }
}

fn tls_check(f: &Facts, tls: &TlsSettings) -> Check {
    let name = "tls";
    if f.unix_socket {
        return Check::ok(name, "Unix-domain socket: local, TLS does not apply");
    }
    if f.ssl {
        let how = format!(
            "{} {}; {}",
            f.tls_version.as_deref().unwrap_or("TLS"),
            f.cipher.as_deref().unwrap_or(""),
            tls.describe()
        );
        if tls.verify == Verify::Nothing {
            return Check::warning(name, format!("encrypted, but the server's certificate is not verified ({how})"), "connect with sslmode=verify-full sslrootcert=<the CA's certificate file> (in the DSN, or PGSSLMODE and PGSSLROOTCERT)");
        }
        return Check::ok(name, format!("encrypted: {how}"));
    }
    let client_side = if tls.mode == SslMode::Disable { ", sslmode=disable" } else { "" };
    let found = format!(
        "plaintext TCP connection (server ssl = {}{client_side}; {})",
        f.server_ssl,
        tls.describe()
    );
    let connect = "connect with sslmode=verify-full sslrootcert=<the CA's certificate file> (in the DSN, or PGSSLMODE and PGSSLROOTCERT)";
    let fix = if f.server_ssl == "on" {
        connect.to_string()
    } else {
        format!("on the server: ssl_cert_file and ssl_key_file, ALTER SYSTEM SET ssl = on; SELECT pg_reload_conf(); then {connect}")
    };
    Check::warning(name, found, fix)
}

/// The ALTER SYSTEM adding every missing library, whichever check shows it.
fn preload_fix(f: &Facts) -> String {
    let restart = "then restart PostgreSQL (e.g. systemctl restart postgresql)";
    match f.preload.as_deref().map(preload::parse) {
        Some(Ok(current)) => format!("{} {restart}", preload::alter_system(&preload::with(&current, LIBRARIES))),
        Some(Err(e)) => format!("set shared_preload_libraries to a valid list including pg_stat_statements and pitstop ({e}), {restart}"),
        None => format!(
            "ALTER SYSTEM SET shared_preload_libraries = <its current entries, each quoted>, 'pg_stat_statements', 'pitstop'; \
             (this role may not read the list: SHOW shared_preload_libraries as a superuser) {restart}"
        ),
    }
}

/// `what`, with the setting's value when this role may read it, else how it was told.
fn with_list(what: &str, loaded: bool, f: &Facts) -> String {
    let pending =
        if f.preload_pending_restart { "; a changed value waits for a restart" } else { "" };
    let defined = if loaded { "defined" } else { "not defined" };
    match &f.preload {
        Some(list) => format!("{what} (shared_preload_libraries = '{list}'{pending})"),
        None => format!("{what} (its settings are {defined} in this session; reading shared_preload_libraries needs pg_read_all_settings)"),
    }
}

fn preloaded(f: &Facts) -> Check {
    let name = "shared_preload_libraries";
    if f.pitstop_loaded {
        return Check::ok(name, with_list("pitstop is preloaded", true, f));
    }
    Check::failed(name, with_list("pitstop is not preloaded", false, f), preload_fix(f))
}

fn extension(f: &Facts) -> Check {
    let name = "extension";
    let needed = extension_version::NEEDED;
    let available = match &f.pitstop_available {
        Some(v) => format!("the server's packaged version is {v}"),
        None => "the pitstop package is not installed on the server".into(),
    };
    let package =
        format!("install the pitstop {needed} package for PostgreSQL {} on the server", f.major());
    match &f.pitstop_installed {
        None => {
            let fix = match &f.pitstop_available {
                Some(v) if v == needed => {
                    format!("CREATE EXTENSION pitstop; (in database {:?})", f.database)
                }
                _ => format!(
                    "{package}, then CREATE EXTENSION pitstop; (in database {:?})",
                    f.database
                ),
            };
            Check::failed(
                name,
                format!("pitstop is not installed in database {:?} ({available})", f.database),
                fix,
            )
        }
        Some(installed) => match extension_version::mismatch(needed, installed) {
            None => Check::ok(name, format!("pitstop {installed} in database {:?}", f.database)),
            Some(problem) => {
                let fix = match (
                    extension_version::numbers(installed),
                    extension_version::numbers(needed),
                ) {
                    (Some(have), Some(want)) if have > want => {
                        format!("use pitstop {installed} (this binary is {needed})")
                    }
                    _ if f.pitstop_available.as_deref() != Some(needed) => {
                        format!("{package}, then ALTER EXTENSION pitstop UPDATE TO '{needed}';")
                    }
                    _ => format!("ALTER EXTENSION pitstop UPDATE TO '{needed}';"),
                };
                Check::failed(name, format!("{problem} ({available})"), fix)
            }
        },
    }
}

fn pg_stat_statements(f: &Facts) -> Check {
    let name = "pg_stat_statements";
    if !f.pgss_loaded {
        let fix = if f.pgss_available {
            preload_fix(f)
        } else {
            format!("install PostgreSQL's contrib package on the server, then {}", preload_fix(f))
        };
        return Check::failed(
            name,
            with_list("pg_stat_statements is not preloaded", false, f),
            fix,
        );
    }
    if f.pgss_installed.is_none() {
        return Check::failed(
            name,
            format!(
                "the library is preloaded, but the extension is not created in database {:?}",
                f.database
            ),
            "CREATE EXTENSION pg_stat_statements;",
        );
    }
    let setting = f.compute_query_id.as_deref().unwrap_or("?");
    if !matches!(setting, "on" | "auto" | "regress") {
        return Check::failed(name, format!("compute_query_id = {setting}: no statement gets a query id, so pg_stat_statements records nothing"), "ALTER SYSTEM SET compute_query_id = 'auto'; SELECT pg_reload_conf();");
    }
    match f.query_id {
        Some(id) => Check::ok(name, format!("preloaded, extension {} created, compute_query_id = {setting} (this session's query id {id})", f.pgss_installed.as_deref().unwrap_or("?"))),
        None => Check::failed(
            name,
            format!("compute_query_id = {setting}, but this session's statement got no query id"),
            "ALTER SYSTEM SET compute_query_id = 'on'; SELECT pg_reload_conf(); (another module may compute query ids differently: check shared_preload_libraries)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::tls::Roots;

    fn healthy() -> Facts {
        Facts {
            version_num: 150008,
            version: "15.8".into(),
            preload: Some("pg_stat_statements,pitstop".into()),
            pitstop_loaded: true,
            pgss_loaded: true,
            pitstop_installed: Some(extension_version::NEEDED.into()),
            pitstop_available: Some(extension_version::NEEDED.into()),
            pgss_installed: Some("1.10".into()),
            pgss_available: true,
            server_ssl: "off".into(),
            unix_socket: true,
            role: "pitstop".into(),
            role_ident: "pitstop".into(),
            database: "app".into(),
            compute_query_id: Some("auto".into()),
            query_id: Some(42),
            ..Facts::default()
        }
    }

    fn no_tls() -> TlsSettings {
        TlsSettings { mode: SslMode::Prefer, verify: Verify::Nothing, client: None }
    }

    #[test]
    fn a_healthy_server_passes_every_check() {
        for c in checks(&Ok(healthy()), &no_tls()) {
            assert_eq!(c.status, super::super::Status::Ok, "{c:?}");
        }
    }

    #[test]
    fn unsupported_versions_name_the_supported_ones() {
        let c = version(&Facts { version_num: 160004, version: "16.4".into(), ..healthy() });
        assert_eq!(
            (c.found.as_str(), c.fix.as_deref()),
            (
                "PostgreSQL 16.4 is not supported",
                Some("run pitstop on PostgreSQL 15, 17, 18 (pg_upgrade to one of them)")
            )
        );
        assert!(version(&Facts { version_num: 180001, ..healthy() }).fix.is_none());
    }

    #[test]
    fn missing_libraries_are_added_to_the_existing_list_by_both_checks() {
        let f = Facts {
            preload: Some("auto_explain".into()),
            pitstop_loaded: false,
            pgss_loaded: false,
            ..healthy()
        };
        let fix = "ALTER SYSTEM SET shared_preload_libraries = 'auto_explain', 'pg_stat_statements', 'pitstop'; then restart PostgreSQL (e.g. systemctl restart postgresql)";
        assert_eq!(preloaded(&f).fix.as_deref(), Some(fix));
        assert_eq!(pg_stat_statements(&f).fix.as_deref(), Some(fix));
        let f = Facts {
            preload: Some("pg_stat_statements".into()),
            pitstop_loaded: false,
            preload_pending_restart: true,
            ..healthy()
        };
        assert!(preloaded(&f).found.ends_with("waits for a restart)"));
        // A role that may not read the list is still told whether pitstop is loaded.
        let f = Facts { preload: None, pitstop_loaded: false, ..healthy() };
        let c = preloaded(&f);
        assert!(
            c.found.starts_with(
                "pitstop is not preloaded (its settings are not defined in this session"
            ) && c.fix.unwrap().contains("SHOW shared_preload_libraries as a superuser")
        );
        let c = preloaded(&Facts { preload: None, ..healthy() });
        assert_eq!((c.status, c.found.as_str()), (super::super::Status::Ok, "pitstop is preloaded (its settings are defined in this session; reading shared_preload_libraries needs pg_read_all_settings)"));
    }

    #[test]
    fn extension_fixes_follow_the_installed_and_packaged_versions() {
        let needed = extension_version::NEEDED;
        let missing = extension(&Facts { pitstop_installed: None, ..healthy() });
        assert_eq!(missing.fix.as_deref(), Some("CREATE EXTENSION pitstop; (in database \"app\")"));
        let old = extension(&Facts { pitstop_installed: Some("0.0.1".into()), ..healthy() });
        assert_eq!(old.fix, Some(format!("ALTER EXTENSION pitstop UPDATE TO '{needed}';")));
        let unpackaged = extension(&Facts {
            pitstop_installed: Some("0.0.1".into()),
            pitstop_available: Some("0.0.1".into()),
            ..healthy()
        });
        assert!(unpackaged
            .fix
            .unwrap()
            .starts_with(&format!("install the pitstop {needed} package for PostgreSQL 15")));
        let newer = extension(&Facts { pitstop_installed: Some("99.0.0".into()), ..healthy() });
        assert_eq!(newer.fix, Some(format!("use pitstop 99.0.0 (this binary is {needed})")));
    }

    #[test]
    fn query_ids_must_be_computed_and_produced() {
        assert_eq!(
            pg_stat_statements(&Facts { compute_query_id: Some("off".into()), ..healthy() })
                .fix
                .as_deref(),
            Some("ALTER SYSTEM SET compute_query_id = 'auto'; SELECT pg_reload_conf();")
        );
        assert!(pg_stat_statements(&Facts { query_id: None, ..healthy() })
            .found
            .contains("got no query id"));
        assert_eq!(
            pg_stat_statements(&Facts { pgss_installed: None, ..healthy() }).fix.as_deref(),
            Some("CREATE EXTENSION pg_stat_statements;")
        );
    }

    #[test]
    fn tls_is_ok_only_when_encrypted_and_verified() {
        let tcp = Facts { unix_socket: false, ..healthy() };
        let plain = tls_check(&tcp, &no_tls());
        assert_eq!(plain.status, super::super::Status::Warning);
        assert!(plain.fix.unwrap().starts_with(
            "on the server: ssl_cert_file and ssl_key_file, ALTER SYSTEM SET ssl = on;"
        ));
        let on = Facts {
            ssl: true,
            server_ssl: "on".into(),
            tls_version: Some("TLSv1.3".into()),
            ..tcp.clone()
        };
        assert_eq!(tls_check(&on, &no_tls()).status, super::super::Status::Warning);
        let verified = TlsSettings {
            mode: SslMode::VerifyFull,
            verify: Verify::Full(Roots::System),
            client: None,
        };
        let ok = tls_check(&on, &verified);
        assert!(ok.fix.is_none() && ok.found.starts_with("encrypted: TLSv1.3"), "{ok:?}");
        let refused = tls_check(&Facts { server_ssl: "on".into(), ..tcp }, &no_tls());
        assert!(refused.fix.unwrap().starts_with("connect with sslmode=verify-full"));
    }
}
