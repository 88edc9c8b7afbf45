//! The kinds of value a setting can hold: how each is read (a TOML value, or the text of a
//! `PITSTOP_*` environment variable) and how it is shown by `check-config` (secrets masked).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// A setting's raw value, before it is checked.
pub enum Raw<'a> {
    Toml(&'a toml::Value),
    Env(&'a str),
}

impl Raw<'_> {
    /// The text of a string value (TOML string or any environment value).
    fn text(&self, expected: &str) -> Result<&str, String> {
        match self {
            Raw::Toml(toml::Value::String(s)) => Ok(s),
            Raw::Env(s) => Ok(s),
            Raw::Toml(other) => {
                Err(format!("expected {expected}, found a TOML {}", other.type_str()))
            }
        }
    }
}

/// A value that can appear in the configuration.
pub trait Setting: Sized {
    fn parse(raw: Raw) -> Result<Self, String>;
    /// The value as `check-config` prints it; secrets are masked.
    fn show(&self) -> toml::Value;
}

impl Setting for bool {
    fn parse(raw: Raw) -> Result<Self, String> {
        match raw {
            Raw::Toml(toml::Value::Boolean(b)) => Ok(*b),
            Raw::Env(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(format!("{s:?} is not a boolean (true or false)")),
            },
            Raw::Toml(other) => {
                Err(format!("expected true or false, found a TOML {}", other.type_str()))
            }
        }
    }
    fn show(&self) -> toml::Value {
        toml::Value::Boolean(*self)
    }
}

/// A TOML integer or an environment string that parses as one, in the range of `T`.
fn whole_number<T: TryFrom<i64>>(raw: Raw) -> Result<T, String> {
    let n = match raw {
        Raw::Toml(toml::Value::Integer(n)) => *n,
        Raw::Env(s) => {
            s.trim().parse::<i64>().map_err(|_| format!("{s:?} is not a whole number"))?
        }
        Raw::Toml(other) => {
            return Err(format!("expected a whole number, found a TOML {}", other.type_str()))
        }
    };
    T::try_from(n).map_err(|_| format!("{n} is out of range"))
}

impl Setting for u32 {
    fn parse(raw: Raw) -> Result<Self, String> {
        whole_number(raw)
    }
    fn show(&self) -> toml::Value {
        toml::Value::Integer(i64::from(*self))
    }
}

impl Setting for u64 {
    fn parse(raw: Raw) -> Result<Self, String> {
        whole_number(raw)
    }
    fn show(&self) -> toml::Value {
        toml::Value::Integer(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

/// A number; TOML integers are accepted too (`30` for `30.0`).
impl Setting for f64 {
    fn parse(raw: Raw) -> Result<Self, String> {
        let x = match raw {
            Raw::Toml(toml::Value::Float(x)) => *x,
            Raw::Toml(toml::Value::Integer(n)) => *n as f64,
            Raw::Env(s) => s.trim().parse::<f64>().map_err(|_| format!("{s:?} is not a number"))?,
            Raw::Toml(other) => {
                return Err(format!("expected a number, found a TOML {}", other.type_str()))
            }
        };
        if x.is_finite() {
            Ok(x)
        } else {
            Err(format!("{x} is not a finite number"))
        }
    }
    fn show(&self) -> toml::Value {
        toml::Value::Float(*self)
    }
}

impl Setting for String {
    fn parse(raw: Raw) -> Result<Self, String> {
        raw.text("a string").map(str::to_string)
    }
    fn show(&self) -> toml::Value {
        toml::Value::String(self.clone())
    }
}

impl Setting for Duration {
    fn parse(raw: Raw) -> Result<Self, String> {
        const HINT: &str = "a duration such as \"500ms\", \"5s\", \"2m\" or \"1h\"";
        let text = raw.text(HINT)?;
        humantime::parse_duration(text.trim()).map_err(|_| format!("{text:?} is not {HINT}"))
    }
    fn show(&self) -> toml::Value {
        toml::Value::String(humantime::format_duration(*self).to_string())
    }
}

impl Setting for SocketAddr {
    fn parse(raw: Raw) -> Result<Self, String> {
        let text = raw.text("an address such as \"127.0.0.1:9247\"")?;
        parse_listen(text)
    }
    fn show(&self) -> toml::Value {
        toml::Value::String(self.to_string())
    }
}

/// `host:port` where host is an IP address (IPv6 in brackets) or `localhost`; port 0 lets
/// the kernel choose.
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let shape = || format!("{text:?} is not an address:port such as \"127.0.0.1:9247\"");
    let (host, port) = text.trim().rsplit_once(':').ok_or_else(shape)?;
    let port: u16 = match port.parse::<u64>() {
        Ok(p) => u16::try_from(p)
            .map_err(|_| format!("bad port {p} in {text:?}: ports go up to 65535"))?,
        Err(_) => return Err(format!("bad port {port:?} in {text:?}: expected a number")),
    };
    let ip: IpAddr = match host.trim_start_matches('[').trim_end_matches(']') {
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        h => h.parse().map_err(|_| shape())?,
    };
    Ok(SocketAddr::new(ip, port))
}

/// A choice among named values (profiles, log formats).
pub trait Choice: Sized + Copy + 'static {
    const NAMES: &'static [(&'static str, Self)];
}

impl<T: Choice + PartialEq> Setting for T {
    fn parse(raw: Raw) -> Result<Self, String> {
        let names: Vec<&str> = T::NAMES.iter().map(|(n, _)| *n).collect();
        let text = raw.text(&format!("one of {}", names.join(", ")))?;
        T::NAMES
            .iter()
            .find(|(name, _)| *name == text.trim())
            .map(|(_, v)| *v)
            .ok_or_else(|| format!("{text:?} is not one of {}", names.join(", ")))
    }
    fn show(&self) -> toml::Value {
        let name = T::NAMES.iter().find(|(_, v)| v == self).map(|(n, _)| *n).unwrap_or("?");
        toml::Value::String(name.to_string())
    }
}

/// `http.allowed_hosts`: Host names served besides the listening address and localhost,
/// each `name` (any port) or `name:port`; a TOML array, or a comma-separated list (from the
/// environment: `PITSTOP_HTTP_ALLOWED_HOSTS="a.example.com,b.example.com:9247"`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AllowedHosts(pub Vec<crate::http::host::Authority>);

impl Setting for AllowedHosts {
    fn parse(raw: Raw) -> Result<Self, String> {
        let entries: Vec<&str> = match &raw {
            Raw::Toml(toml::Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str().ok_or_else(|| {
                        format!("expected host names (strings), found a TOML {}", item.type_str())
                    })
                })
                .collect::<Result<_, _>>()?,
            other => other
                .text("a list of host names such as [\"pitstop.example.com\"]")?
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .collect(),
        };
        entries
            .iter()
            .map(|e| crate::http::host::Authority::parse(e))
            .collect::<Result<_, _>>()
            .map(AllowedHosts)
    }
    fn show(&self) -> toml::Value {
        toml::Value::Array(self.0.iter().map(|a| toml::Value::String(a.to_string())).collect())
    }
}

/// An optional file path; empty means unset.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptionalPath(pub Option<PathBuf>);

impl Setting for OptionalPath {
    fn parse(raw: Raw) -> Result<Self, String> {
        let text = raw.text("a file path")?;
        Ok(OptionalPath((!text.is_empty()).then(|| PathBuf::from(text))))
    }
    fn show(&self) -> toml::Value {
        toml::Value::String(self.0.as_ref().map(|p| p.display().to_string()).unwrap_or_default())
    }
}

/// A PostgreSQL connection string (`host=… dbname=…` or `postgres://…`); empty means the
/// libpq environment (PGHOST, PGPORT, …, ~/.pgpass). Shown and debug-printed with the
/// password masked.
#[derive(Clone, Default, PartialEq)]
pub struct PgDsn(String);

impl PgDsn {
    /// The connection string itself, for connecting; never log it.
    pub fn expose(&self) -> Option<&str> {
        (!self.0.trim().is_empty()).then_some(self.0.as_str())
    }
}

impl std::fmt::Debug for PgDsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", mask_dsn(&self.0))
    }
}

impl Setting for PgDsn {
    fn parse(raw: Raw) -> Result<Self, String> {
        let text = raw.text("a connection string")?;
        if !text.trim().is_empty() {
            crate::db::conninfo::parse(text)
                .map_err(|e| format!("not a valid connection string: {e:#}"))?;
        }
        Ok(PgDsn(text.to_string()))
    }
    fn show(&self) -> toml::Value {
        toml::Value::String(mask_dsn(&self.0))
    }
}

/// One Redis URL, or for a cluster several seed URLs separated by commas
/// (`redis://[user:password@]host:port[/db]`, `rediss://` for TLS). Empty disables the relay.
#[derive(Clone, Default, PartialEq)]
pub struct RedisUrls(Vec<String>);

impl RedisUrls {
    /// The URLs themselves, for connecting; never log them.
    pub fn expose(&self) -> &[String] {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn uses_tls(&self) -> bool {
        self.0.iter().any(|u| u.starts_with("rediss://") || u.starts_with("valkeys://"))
    }
}

impl std::fmt::Debug for RedisUrls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|u| mask_url(u))).finish()
    }
}

impl Setting for RedisUrls {
    fn parse(raw: Raw) -> Result<Self, String> {
        let text = raw.text("a redis:// URL")?;
        let urls: Vec<String> =
            text.split(',').map(str::trim).filter(|u| !u.is_empty()).map(str::to_string).collect();
        for url in &urls {
            let scheme_ok = redis::parse_redis_url(url)
                .is_some_and(|u| matches!(u.scheme(), "redis" | "rediss" | "redis+unix" | "unix"));
            if !scheme_ok {
                return Err(format!(
                    "{:?} is not a redis://, rediss:// or redis+unix:// URL",
                    mask_url(url)
                ));
            }
            if let Err(e) = redis::IntoConnectionInfo::into_connection_info(url.as_str()) {
                return Err(format!(
                    "{:?} is not a usable Redis URL: {}",
                    mask_url(url),
                    e.detail().unwrap_or("invalid")
                ));
            }
        }
        Ok(RedisUrls(urls))
    }
    fn show(&self) -> toml::Value {
        toml::Value::String(self.0.iter().map(|u| mask_url(u)).collect::<Vec<_>>().join(","))
    }
}

/// The alert webhook's http:// or https:// URL; empty means no webhook. Its path and query
/// are a bearer secret for Slack, Teams or PagerDuty: shown and debug-printed as
/// `scheme://host/********`.
#[derive(Clone, Default, PartialEq)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    /// The URL itself, for sending; never log it.
    pub fn expose(&self) -> Option<&str> {
        (!self.0.is_empty()).then_some(self.0.as_str())
    }
}

impl std::fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", mask_webhook_url(&self.0))
    }
}

impl Setting for WebhookUrl {
    fn parse(raw: Raw) -> Result<Self, String> {
        let url = raw.text("an http:// or https:// URL")?;
        if url.is_empty() || url.starts_with("http://") || url.starts_with("https://") {
            Ok(WebhookUrl(url.to_string()))
        } else {
            Err(format!("{:?} is not an http:// or https:// URL", mask_webhook_url(url)))
        }
    }
    fn show(&self) -> toml::Value {
        toml::Value::String(mask_webhook_url(&self.0))
    }
}

/// `url` with only its scheme and host (and port) left: any user-info is dropped and whatever
/// follows the host becomes `/********`.
pub fn mask_webhook_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return if url.is_empty() { String::new() } else { MASK.to_string() };
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if end < rest.len() && rest[end..] != *"/" {
        format!("{scheme}://{host}/{MASK}")
    } else {
        format!("{scheme}://{host}{}", &rest[end..])
    }
}

/// A password; shown as `********` when set.
#[derive(Clone, Default, PartialEq)]
pub struct Password(Option<String>);

impl Password {
    pub fn expose(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "\"********\"" } else { "None" })
    }
}

impl Setting for Password {
    fn parse(raw: Raw) -> Result<Self, String> {
        let text = raw.text("a string")?;
        Ok(Password((!text.is_empty()).then(|| text.to_string())))
    }
    fn show(&self) -> toml::Value {
        toml::Value::String(if self.0.is_some() { MASK.to_string() } else { String::new() })
    }
}

pub const MASK: &str = "********";

/// A URL with the password of its user-info part (and any `password=` query parameter)
/// replaced by `********`.
pub fn mask_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else { return mask_query_password(url) };
    let start = scheme_end + 3;
    let rest = &url[start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let masked = match rest[..authority_len].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = match userinfo.find(':') {
                Some(colon) => format!("{}:{MASK}", &userinfo[..colon]),
                // `redis://secret@host` is read as a password by some clients.
                None if url.starts_with("redis") => MASK.to_string(),
                None => userinfo.to_string(),
            };
            format!("{}{user}{}", &url[..start], &rest[at..])
        }
        None => url.to_string(),
    };
    mask_query_password(&masked)
}

fn mask_query_password(url: &str) -> String {
    let Some(q) = url.find('?') else { return url.to_string() };
    let (head, query) = url.split_at(q + 1);
    let params: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}={MASK}"),
            _ => p.to_string(),
        })
        .collect();
    format!("{head}{}", params.join("&"))
}

/// A libpq connection string with its password masked, in either form
/// (`postgres://user:pw@host/db`, or `host=h password='p w'`).
pub fn mask_dsn(dsn: &str) -> String {
    let trimmed = dsn.trim_start();
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        return mask_url(dsn);
    }
    // key = value pairs; values bare or single-quoted with backslash escapes.
    fn spaces(chars: &[char], i: &mut usize, out: &mut String) {
        while *i < chars.len() && chars[*i].is_whitespace() {
            out.push(chars[*i]);
            *i += 1;
        }
    }
    let chars: Vec<char> = dsn.chars().collect();
    let (mut out, mut i) = (String::with_capacity(dsn.len()), 0);
    loop {
        spaces(&chars, &mut i, &mut out);
        let key_start = i;
        while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() {
            i += 1;
        }
        if i == key_start && i >= chars.len() {
            return out;
        }
        let key: String = chars[key_start..i].iter().collect();
        out.push_str(&key);
        spaces(&chars, &mut i, &mut out);
        if chars.get(i) != Some(&'=') {
            continue;
        }
        out.push('=');
        i += 1;
        spaces(&chars, &mut i, &mut out);
        let value_start = i;
        if chars.get(i) == Some(&'\'') {
            i += 1;
            while i < chars.len() {
                i += match chars[i] {
                    '\\' => 2,
                    '\'' => {
                        i += 1;
                        break;
                    }
                    _ => 1,
                };
            }
        } else {
            while i < chars.len() && !chars[i].is_whitespace() {
                i += 1;
            }
        }
        i = i.min(chars.len());
        if key == "password" {
            out.push_str(MASK);
        } else {
            out.extend(&chars[value_start..i]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<T: Setting>(text: &str) -> Result<T, String> {
        T::parse(Raw::Env(text))
    }

    #[test]
    fn dsn_passwords_are_masked_in_both_forms() {
        assert_eq!(
            mask_dsn("host=db password=s3cret user=app"),
            "host=db password=******** user=app"
        );
        assert_eq!(mask_dsn("password = 'a b\\' c' dbname=x"), "password = ******** dbname=x");
        assert_eq!(mask_dsn("host=db mypassword=x"), "host=db mypassword=x");
        assert_eq!(
            mask_dsn("postgres://app:s3cret@db:5432/shop"),
            "postgres://app:********@db:5432/shop"
        );
        assert_eq!(
            mask_dsn("postgresql://db/shop?user=a&password=s3cret"),
            "postgresql://db/shop?user=a&password=********"
        );
        assert_eq!(mask_dsn("host=db"), "host=db");
    }

    #[test]
    fn webhook_urls_keep_only_scheme_and_host() {
        for (url, shown) in [
            ("https://hooks.slack.com/services/T0/B0/tok", "https://hooks.slack.com/********"),
            ("http://u:p@127.0.0.1:8080/hook?token=x", "http://127.0.0.1:8080/********"),
            ("https://events.pagerduty.com?routing_key=x", "https://events.pagerduty.com/********"),
            ("https://alerts.example/", "https://alerts.example/"),
            ("https://alerts.example", "https://alerts.example"),
            ("", ""),
            ("not a url secret", "********"),
        ] {
            assert_eq!(mask_webhook_url(url), shown, "{url}");
        }
    }

    #[test]
    fn url_passwords_are_masked() {
        assert_eq!(mask_url("redis://:hunter2@cache:6379/0"), "redis://:********@cache:6379/0");
        assert_eq!(
            mask_url("rediss://default:hunter2@cache:6380"),
            "rediss://default:********@cache:6380"
        );
        assert_eq!(mask_url("redis://hunter2@cache"), "redis://********@cache");
        assert_eq!(mask_url("redis://cache:6379/"), "redis://cache:6379/");
    }

    #[test]
    fn redis_urls_are_checked_and_split() {
        let urls = env::<RedisUrls>("redis://a:7000, redis://b:7001").unwrap();
        assert_eq!(urls.expose(), ["redis://a:7000", "redis://b:7001"]);
        assert!(env::<RedisUrls>("").unwrap().is_empty());
        let err = env::<RedisUrls>("http://user:pw@x").unwrap_err();
        assert!(err.contains("not a redis://") && !err.contains("pw"), "{err}");
        assert!(env::<RedisUrls>("rediss://h:1").unwrap().uses_tls());
        assert_eq!(
            format!("{:?}", env::<RedisUrls>("redis://:pw@h").unwrap()),
            "[\"redis://:********@h\"]"
        );
    }

    #[test]
    fn allowed_hosts_from_an_array_or_a_list() {
        let array: toml::Value =
            toml::Value::Array(vec!["Pitstop.Example.com".into(), "m.example.com:8443".into()]);
        let hosts = AllowedHosts::parse(Raw::Toml(&array)).unwrap();
        assert_eq!(
            hosts.show(),
            toml::Value::Array(vec!["pitstop.example.com".into(), "m.example.com:8443".into()])
        );
        assert_eq!(
            env::<AllowedHosts>(" pitstop.example.com , m.example.com:8443").unwrap(),
            hosts
        );
        assert_eq!(env::<AllowedHosts>("").unwrap(), AllowedHosts::default());
        assert!(env::<AllowedHosts>("ok.example.com,bad host")
            .unwrap_err()
            .contains("\"bad host\" is not a host name"));
        assert!(AllowedHosts::parse(Raw::Toml(&toml::Value::Array(vec![1.into()])))
            .unwrap_err()
            .contains("found a TOML integer"));
    }

    #[test]
    fn listen_addresses_and_ports() {
        assert_eq!(env::<SocketAddr>("127.0.0.1:9247").unwrap().port(), 9247);
        assert_eq!(
            env::<SocketAddr>("localhost:80").unwrap().ip(),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        assert_eq!(env::<SocketAddr>("[::1]:8080").unwrap().port(), 8080);
        assert!(env::<SocketAddr>("127.0.0.1:99999").unwrap_err().contains("bad port 99999"));
        assert!(env::<SocketAddr>("127.0.0.1:http").unwrap_err().contains("bad port"));
        assert!(env::<SocketAddr>("nonsense").unwrap_err().contains("not an address:port"));
        assert!(env::<SocketAddr>("example.com:80").unwrap_err().contains("not an address:port"));
    }

    #[test]
    fn durations_booleans_and_numbers() {
        assert_eq!(env::<Duration>("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(env::<Duration>("1h 30m").unwrap(), Duration::from_secs(5400));
        assert!(env::<Duration>("fast").unwrap_err().contains("not a duration"));
        assert!(Duration::parse(Raw::Toml(&toml::Value::Integer(5)))
            .unwrap_err()
            .contains("found a TOML integer"));
        assert!(env::<bool>("yes").unwrap());
        assert!(env::<bool>("maybe").is_err());
        assert_eq!(env::<u32>("42").unwrap(), 42);
        assert!(env::<u32>("-1").unwrap_err().contains("out of range"));
        assert!(env::<u32>("abc").is_err());
        assert_eq!(Duration::from_millis(1500).show().as_str(), Some("1s 500ms"));
    }

    #[test]
    fn secrets_never_show() {
        let dsn = env::<PgDsn>("host=h password=pw").unwrap();
        assert_eq!(format!("{dsn:?}"), "\"host=h password=********\"");
        assert_eq!(dsn.show().as_str(), Some("host=h password=********"));
        assert_eq!(dsn.expose(), Some("host=h password=pw"));
        let pw = env::<Password>("pw").unwrap();
        assert_eq!(pw.show().as_str(), Some(MASK));
        assert_eq!(format!("{pw:?}"), "\"********\"");
        assert!(env::<PgDsn>("host=h port=notaport").is_err());
    }
}
