//! libpq connection parameters gathered the way psql gathers them: the command line's flags
//! and connection string first, then the service file (`service=`/PGSERVICE), then the PG*
//! environment variables, then the defaults; the password last from the password file.
//! tokio-postgres parses neither URIs with libpq's TLS keys nor `verify-ca`/`verify-full`, so
//! the keywords are collected here and only those it knows are handed to it.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Keywords read by pitstop itself (TLS, services, the password file); never given to
/// tokio-postgres.
const OWN_KEYS: &[&str] = &["sslmode", "sslrootcert", "sslcert", "sslkey", "service", "passfile"];

/// Keywords passed on to tokio-postgres as they are.
const DRIVER_KEYS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "user",
    "password",
    "dbname",
    "options",
    "application_name",
    "connect_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
];

/// The environment variables libpq falls back to, by keyword.
const ENVIRONMENT: &[(&str, &str)] = &[
    ("PGHOST", "host"),
    ("PGHOSTADDR", "hostaddr"),
    ("PGPORT", "port"),
    ("PGDATABASE", "dbname"),
    ("PGUSER", "user"),
    ("PGPASSWORD", "password"),
    ("PGPASSFILE", "passfile"),
    ("PGOPTIONS", "options"),
    ("PGAPPNAME", "application_name"),
    ("PGSSLMODE", "sslmode"),
    ("PGSSLROOTCERT", "sslrootcert"),
    ("PGSSLCERT", "sslcert"),
    ("PGSSLKEY", "sslkey"),
    ("PGCONNECT_TIMEOUT", "connect_timeout"),
    ("PGTARGETSESSIONATTRS", "target_session_attrs"),
    ("PGCHANNELBINDING", "channel_binding"),
];

/// Where Debian's libpq looks for the system-wide service file (PGSYSCONFDIR overrides).
const SYSCONFDIR: &str = "/etc/postgresql-common";

/// Connection keywords and their values.
pub type Params = BTreeMap<String, String>;

/// What the command line says about the connection (psql's `-h -p -U -d` and `--dsn`).
#[derive(Debug, Default, Clone)]
pub struct Explicit<'a> {
    pub dsn: Option<&'a str>,
    pub host: Option<&'a str>,
    pub port: Option<&'a str>,
    pub user: Option<&'a str>,
    /// A database name, or (as with psql) a whole connection string.
    pub dbname: Option<&'a str>,
}

impl Explicit<'_> {
    /// No connection flag was given.
    pub fn is_empty(&self) -> bool {
        self.dsn.is_none()
            && self.host.is_none()
            && self.port.is_none()
            && self.user.is_none()
            && self.dbname.is_none()
    }
}

/// Whether `s` is a connection string rather than a plain database name (libpq's test).
fn is_conninfo(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://") || s.contains('=')
}

/// The keywords of a connection string, `key=value …` or a `postgres://` URI. Unknown
/// keywords are errors, as with libpq.
pub fn parse(text: &str) -> Result<Params> {
    let trimmed = text.trim();
    let pairs = if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        parse_uri(trimmed)?
    } else {
        parse_pairs(trimmed)?
    };
    let mut params = Params::new();
    for (key, value) in pairs {
        if !OWN_KEYS.contains(&key.as_str()) && !DRIVER_KEYS.contains(&key.as_str()) {
            bail!("unknown connection option {key:?}");
        }
        params.insert(key, value);
    }
    if let Some(mode) = params.get("sslmode") {
        super::tls::SslMode::parse(mode)?;
    }
    driver_conninfo(&params).parse::<tokio_postgres::Config>()?;
    Ok(params)
}

fn parse_pairs(text: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            bail!("missing \"=\" after {key:?} in the connection string");
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => bail!("unterminated quoted value of {key:?} in the connection string"),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value));
    }
}

fn percent_decode(s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(hex.with_context(|| {
                format!("invalid percent-encoding in the connection URI: {s:?}")
            })?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).context("the connection URI is not UTF-8 once decoded")
}

/// `postgres://[user[:password]@][host[:port][,…]][/dbname][?key=value&…]`.
fn parse_uri(uri: &str) -> Result<Vec<(String, String)>> {
    let rest = uri.split_once("://").map(|(_, r)| r).unwrap_or(uri);
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut out = Vec::new();
    let hosts = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let (user, password) =
                userinfo.split_once(':').map_or((userinfo, None), |(u, p)| (u, Some(p)));
            if !user.is_empty() {
                out.push(("user".into(), percent_decode(user)?));
            }
            if let Some(password) = password {
                out.push(("password".into(), percent_decode(password)?));
            }
            hosts
        }
        None => authority,
    };
    if !hosts.is_empty() {
        let (mut names, mut ports) = (Vec::new(), Vec::new());
        for host in hosts.split(',') {
            let (name, port) = match host.strip_prefix('[') {
                Some(v6) => {
                    let (name, after) = v6
                        .split_once(']')
                        .context("unterminated [IPv6 address] in the connection URI")?;
                    (name, after.strip_prefix(':').unwrap_or(""))
                }
                None => host.split_once(':').unwrap_or((host, "")),
            };
            names.push(percent_decode(name)?);
            ports.push(port.to_string());
        }
        if names.iter().any(|n| !n.is_empty()) {
            out.push(("host".into(), names.join(",")));
        }
        if ports.iter().any(|p| !p.is_empty()) {
            out.push(("port".into(), ports.join(",")));
        }
    }
    if !path.is_empty() {
        out.push(("dbname".into(), percent_decode(path)?));
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .with_context(|| format!("missing \"=\" in URI parameter {pair:?}"))?;
        out.push((percent_decode(key)?, percent_decode(value)?));
    }
    Ok(out)
}

/// The entries of service `name` in a pg_service.conf text, or None if it has no such section.
pub fn service_entries(text: &str, name: &str) -> Result<Option<Params>> {
    let mut current: Option<bool> = None;
    let mut found: Option<Params> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if found.is_some() {
                break;
            }
            current = Some(section == name);
            continue;
        }
        if current == Some(true) {
            let (key, value) = line
                .split_once('=')
                .with_context(|| format!("syntax error in service file, line {}", n + 1))?;
            let key = key.trim();
            if key == "service" {
                bail!(
                    "nested service specifications are not supported (service file line {})",
                    n + 1
                );
            }
            let params = parse(&format!(
                "{key}='{}'",
                value.trim().replace('\\', "\\\\").replace('\'', "\\'")
            ))
            .with_context(|| format!("service file line {}", n + 1))?;
            found.get_or_insert_with(Params::new).extend(params);
        }
    }
    Ok(found.or_else(|| (current == Some(true)).then(Params::new)))
}

/// The service's entries: the user's file (PGSERVICEFILE, else ~/.pg_service.conf) first,
/// then the system-wide one (PGSYSCONFDIR/pg_service.conf). A named service found in
/// neither is an error, as with libpq.
fn service(name: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Params> {
    let user_file = env("PGSERVICEFILE")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".pg_service.conf")));
    let system_file = Path::new(&env("PGSYSCONFDIR").unwrap_or_else(|| SYSCONFDIR.into()))
        .join("pg_service.conf");
    for file in user_file.into_iter().chain([system_file]) {
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        if let Some(params) =
            service_entries(&text, name).with_context(|| format!("in {}", file.display()))?
        {
            return Ok(params);
        }
    }
    bail!("definition of service {name:?} not found")
}

/// Every keyword for one connection, by precedence: `explicit` (flags over the connection
/// string), the service, the environment, the defaults (host, user, dbname as psql).
pub fn gather(explicit: &Explicit<'_>, env: &dyn Fn(&str) -> Option<String>) -> Result<Params> {
    let mut params = match explicit.dsn {
        Some(dsn) => parse(dsn).context("invalid --dsn connection string")?,
        None => Params::new(),
    };
    match explicit.dbname {
        Some(db) if is_conninfo(db) => {
            params.extend(parse(db).context("invalid -d connection string")?)
        }
        Some(db) => {
            params.insert("dbname".into(), db.into());
        }
        None => {}
    }
    for (key, value) in [("host", explicit.host), ("port", explicit.port), ("user", explicit.user)]
    {
        if let Some(value) = value {
            params.insert(key.into(), value.into());
        }
    }
    let service_name = params.get("service").cloned().or_else(|| env("PGSERVICE"));
    if let Some(name) = service_name {
        for (key, value) in service(&name, env)? {
            params.entry(key).or_insert(value);
        }
    }
    for (var, key) in ENVIRONMENT {
        if let Some(value) = env(var).filter(|v| !v.is_empty()) {
            params.entry(key.to_string()).or_insert(value);
        }
    }
    if let Some(mode) = params.get("sslmode") {
        super::tls::SslMode::parse(mode).context("invalid sslmode")?;
    }
    if !params.contains_key("host") && !params.contains_key("hostaddr") {
        params.insert("host".into(), "/var/run/postgresql".into());
    }
    let user =
        params.get("user").cloned().or_else(|| env("USER")).unwrap_or_else(|| "postgres".into());
    params.entry("dbname".into()).or_insert_with(|| user.clone());
    params.insert("user".into(), user);
    Ok(params)
}

/// The keywords tokio-postgres understands, as a connection string it parses.
pub fn driver_conninfo(params: &Params) -> String {
    params
        .iter()
        .filter(|(key, _)| DRIVER_KEYS.contains(&key.as_str()))
        .map(|(key, value)| format!("{key}='{}'", value.replace('\\', "\\\\").replace('\'', "\\'")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The password file to read: `passfile`/PGPASSFILE, else ~/.pgpass.
pub fn passfile(params: &Params, env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    params
        .get("passfile")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|home| PathBuf::from(home).join(".pgpass")))
}

/// The password file's contents, if it may be used: like libpq, a file that the group or
/// others can read or write is ignored with a warning on stderr.
pub fn read_passfile(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    if meta.permissions().mode() & 0o077 != 0 {
        eprintln!(
            "WARNING: password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
            path.display()
        );
        return None;
    }
    std::fs::read_to_string(path).ok()
}

/// A fixed environment for tests: the variable lookup `gather` and `passfile` take, over `pairs`.
#[cfg(test)]
pub(crate) fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: std::collections::HashMap<String, String> =
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |k| map.get(k).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(p: &'a Params, key: &str) -> Option<&'a str> {
        p.get(key).map(String::as_str)
    }

    #[test]
    fn key_value_strings_with_quotes_and_tls_keys() {
        let p = parse("host=db port = 5433 dbname='my db' password='it\\'s' sslmode=verify-full sslrootcert=/ca.pem").unwrap();
        assert_eq!(get(&p, "host"), Some("db"));
        assert_eq!(get(&p, "port"), Some("5433"));
        assert_eq!(get(&p, "dbname"), Some("my db"));
        assert_eq!(get(&p, "password"), Some("it's"));
        assert_eq!(get(&p, "sslmode"), Some("verify-full"));
        assert_eq!(get(&p, "sslrootcert"), Some("/ca.pem"));
        assert!(parse("host=db sslmode=maybe").is_err());
        assert!(parse("host=db colour=blue").unwrap_err().to_string().contains("colour"));
        assert!(parse("host='db").is_err());
    }

    #[test]
    fn uris_with_hosts_ports_and_parameters() {
        let p = parse("postgresql://al%40ice:p%3Aw@h1:5433,[::1]:5434/shop?sslmode=verify-ca&sslrootcert=%2Fca.pem&application_name=x").unwrap();
        assert_eq!(get(&p, "user"), Some("al@ice"));
        assert_eq!(get(&p, "password"), Some("p:w"));
        assert_eq!(get(&p, "host"), Some("h1,::1"));
        assert_eq!(get(&p, "port"), Some("5433,5434"));
        assert_eq!(get(&p, "dbname"), Some("shop"));
        assert_eq!(get(&p, "sslmode"), Some("verify-ca"));
        assert_eq!(get(&p, "sslrootcert"), Some("/ca.pem"));
        let p = parse("postgres://h").unwrap();
        assert_eq!((get(&p, "host"), get(&p, "port"), get(&p, "dbname")), (Some("h"), None, None));
    }

    #[test]
    fn flags_beat_the_dsn_which_beats_the_environment() {
        let env = env_of(&[
            ("PGHOST", "envhost"),
            ("PGPORT", "1111"),
            ("PGUSER", "envuser"),
            ("PGSSLMODE", "require"),
            ("PGOPTIONS", "-c work_mem=64MB"),
        ]);
        let explicit = Explicit {
            dsn: Some("host=dsnhost user=dsnuser sslmode=verify-full"),
            host: Some("flaghost"),
            ..Default::default()
        };
        let p = gather(&explicit, &env).unwrap();
        assert_eq!(get(&p, "host"), Some("flaghost"));
        assert_eq!(get(&p, "user"), Some("dsnuser"));
        assert_eq!(get(&p, "port"), Some("1111"));
        assert_eq!(get(&p, "sslmode"), Some("verify-full"));
        assert_eq!(get(&p, "options"), Some("-c work_mem=64MB"));
        // psql's -d may carry a whole connection string.
        let explicit = Explicit {
            dbname: Some("dbname=shop sslmode=disable"),
            user: Some("u"),
            ..Default::default()
        };
        let p = gather(&explicit, &env).unwrap();
        assert_eq!(
            (get(&p, "dbname"), get(&p, "sslmode"), get(&p, "user")),
            (Some("shop"), Some("disable"), Some("u"))
        );
    }

    #[test]
    fn defaults_as_psql() {
        let p = gather(&Explicit::default(), &env_of(&[("USER", "carol")])).unwrap();
        assert_eq!(get(&p, "host"), Some("/var/run/postgresql"));
        assert_eq!((get(&p, "user"), get(&p, "dbname")), (Some("carol"), Some("carol")));
        assert_eq!(get(&p, "sslmode"), None);
        assert!(gather(&Explicit::default(), &env_of(&[("PGSSLMODE", "sometimes")])).is_err());
    }

    #[test]
    fn service_file_fills_what_was_not_given_before_the_environment() {
        let dir = std::env::temp_dir().join(format!("pitstop-service-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pg_service.conf");
        std::fs::write(&file, "# services\n[other]\nhost=nope\n[shop]\nhost=svchost\nport=6000\nsslmode=verify-ca\ndbname=shop\n").unwrap();
        let env = env_of(&[
            ("PGSERVICEFILE", file.to_str().unwrap()),
            ("PGSERVICE", "shop"),
            ("PGPORT", "7000"),
            ("PGUSER", "u"),
        ]);
        let p = gather(&Explicit { dbname: Some("explicit"), ..Default::default() }, &env).unwrap();
        assert_eq!(get(&p, "host"), Some("svchost"));
        // libpq reads the service before the environment variables.
        assert_eq!(get(&p, "port"), Some("6000"));
        assert_eq!(get(&p, "sslmode"), Some("verify-ca"));
        assert_eq!(get(&p, "dbname"), Some("explicit"));
        assert_eq!(get(&p, "user"), Some("u"));
        let missing = gather(&Explicit { dsn: Some("service=absent"), ..Default::default() }, &env)
            .unwrap_err();
        assert!(format!("{missing:#}").contains("service \"absent\" not found"), "{missing:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn driver_conninfo_keeps_only_driver_keys_and_quotes() {
        let p = parse("host=h password='a b\\'c' sslmode=require sslrootcert=/x").unwrap();
        let text = driver_conninfo(&p);
        assert_eq!(text, "host='h' password='a b\\'c'");
        let config: tokio_postgres::Config = text.parse().unwrap();
        assert_eq!(config.get_password(), Some(&b"a b'c"[..]));
    }

    #[test]
    fn a_password_file_others_can_read_is_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("pitstop-pgpass-{}", std::process::id()));
        std::fs::write(&path, "*:*:*:*:secret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_passfile(&path).as_deref(), Some("*:*:*:*:secret\n"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(read_passfile(&path), None);
        std::fs::remove_file(&path).unwrap();
    }
}
