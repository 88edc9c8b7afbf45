//! The daemon's configuration: one TOML file, every key overridable by a `PITSTOP_*`
//! environment variable (`http.listen` → `PITSTOP_HTTP_LISTEN`), and a profile that sets the
//! intervals and batch sizes not given explicitly. `daemon/pitstop.example.toml` documents
//! every key; `pitstop check-config` prints the effective configuration or every error.
//!
//! Unknown keys are errors. Every error names its key path, and all of them are reported at
//! once: the file is walked key by key (`source::Loader`) rather than deserialized in one go,
//! which would stop at the first problem.

pub mod maintenance;
pub mod monitor;
mod source;
mod values;

pub use source::ConfigError;
use source::{Loader, Shown};
use values::Choice;
pub use values::{AllowedHosts, OptionalPath, Password, PgDsn, RedisUrls};

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Where `pitstop run` and `check-config` look when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/pitstop/pitstop.toml";

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub profile: Profile,
    pub postgres: PostgresConfig,
    pub redis: RedisConfig,
    pub relay: RelayConfig,
    pub reconnect: ReconnectConfig,
    pub http: HttpConfig,
    pub log: LogConfig,
    pub monitor: monitor::MonitorConfig,
    pub alerts: monitor::AlertsConfig,
    pub maintenance: maintenance::MaintenanceConfig,
    pub report: ReportConfig,
    /// The effective settings as printed (secrets masked), for check-config and reload diffs.
    shown: Vec<Shown>,
    /// The file read, if any.
    pub file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PostgresConfig {
    pub dsn: PgDsn,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
    pub lock_timeout: Duration,
    pub probe_interval: Duration,
}

/// `pitstop report`'s statement timeouts (None: no limit); `--statement-timeout` overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportConfig {
    pub statement_timeout: Option<Duration>,
    /// For `report bloat --exact`, which reads every page of every table.
    pub exact_statement_timeout: Option<Duration>,
}

impl PostgresConfig {
    /// How the daemon's sessions would use TLS (postgres.dsn, else the PG* environment).
    pub fn tls_summary(&self) -> String {
        match crate::db::daemon_target(self.dsn.expose(), &|name| std::env::var(name).ok()) {
            Ok(target) => target.tls.describe(),
            Err(e) => format!("cannot tell: {e:#}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RedisConfig {
    pub url: RedisUrls,
    pub cluster: bool,
    pub password: Password,
    pub tls_ca_file: OptionalPath,
    pub tls_insecure: bool,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub key_prefix: String,
    pub channel: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RelayConfig {
    pub enabled: bool,
    pub consumer: String,
    pub batch_size: u32,
    pub poll_interval: Duration,
    pub save_interval: Duration,
    pub retention: Duration,
    pub prune_interval: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReconnectConfig {
    pub initial_delay: Duration,
    pub max_delay: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// The console pages and their /api JSON: off unless asked for, since they show statement
    /// texts (other roles' included) to whoever reaches the port.
    pub console: bool,
    /// Host names served besides the listening address and localhost (DNS rebinding).
    pub allowed_hosts: AllowedHosts,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Profile {
    Balanced,
    LowOverhead,
    Aggressive,
}

impl Choice for Profile {
    const NAMES: &'static [(&'static str, Self)] = &[
        ("balanced", Profile::Balanced),
        ("low-overhead", Profile::LowOverhead),
        ("aggressive", Profile::Aggressive),
    ];
}

impl Profile {
    pub fn name(self) -> &'static str {
        Profile::NAMES.iter().find(|(_, p)| *p == self).map(|(n, _)| *n).unwrap_or("?")
    }

    fn defaults(self) -> ProfileDefaults {
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        match self {
            Profile::Balanced => ProfileDefaults {
                probe_interval: s(10),
                poll_interval: s(1),
                batch_size: 1000,
                save_interval: s(1),
                prune_interval: s(60),
                initial_delay: ms(200),
                max_delay: s(30),
                sample_interval: s(15),
            },
            Profile::LowOverhead => ProfileDefaults {
                probe_interval: s(30),
                poll_interval: s(5),
                batch_size: 500,
                save_interval: s(5),
                prune_interval: s(300),
                initial_delay: s(1),
                max_delay: s(60),
                sample_interval: s(60),
            },
            Profile::Aggressive => ProfileDefaults {
                probe_interval: s(2),
                poll_interval: ms(200),
                batch_size: 5000,
                save_interval: ms(100),
                prune_interval: s(15),
                initial_delay: ms(50),
                max_delay: s(5),
                sample_interval: s(5),
            },
        }
    }
}

/// What a profile sets; an explicit key in the file or environment wins.
struct ProfileDefaults {
    probe_interval: Duration,
    poll_interval: Duration,
    batch_size: u32,
    save_interval: Duration,
    prune_interval: Duration,
    initial_delay: Duration,
    max_delay: Duration,
    sample_interval: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LogFormat {
    Plain,
    Json,
}

impl Choice for LogFormat {
    const NAMES: &'static [(&'static str, Self)] =
        &[("plain", LogFormat::Plain), ("json", LogFormat::Json)];
}

pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9247);

fn positive(d: &Duration) -> Result<(), String> {
    if d.is_zero() {
        Err("must be greater than zero".into())
    } else {
        Ok(())
    }
}

fn non_empty<S: AsRef<str>>(s: &S) -> Result<(), String> {
    if s.as_ref().trim().is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(())
    }
}

fn no_check<T>(_: &T) -> Result<(), String> {
    Ok(())
}

impl Config {
    /// Reads every key (in the order `check-config` prints them) and the cross-field rules.
    fn read(l: &mut Loader) -> Config {
        let profile = l.get("profile", Profile::Balanced);
        let p = profile.defaults();
        let postgres = PostgresConfig {
            dsn: l.get("postgres.dsn", PgDsn::default()),
            connect_timeout: l.checked(
                "postgres.connect_timeout",
                Duration::from_secs(5),
                positive,
            ),
            statement_timeout: l.checked(
                "postgres.statement_timeout",
                Duration::from_secs(5),
                positive,
            ),
            lock_timeout: l.checked("postgres.lock_timeout", Duration::from_secs(1), positive),
            probe_interval: l.profiled("postgres.probe_interval", p.probe_interval, positive),
        };
        let redis = RedisConfig {
            url: l.get("redis.url", RedisUrls::default()),
            cluster: l.get("redis.cluster", false),
            password: l.get("redis.password", Password::default()),
            tls_ca_file: l.checked("redis.tls_ca_file", OptionalPath::default(), |p| match &p.0 {
                Some(path) => std::fs::metadata(path)
                    .map(|_| ())
                    .map_err(|e| format!("cannot read {}: {e}", path.display())),
                None => Ok(()),
            }),
            tls_insecure: l.get("redis.tls_insecure", false),
            connect_timeout: l.checked("redis.connect_timeout", Duration::from_secs(3), positive),
            command_timeout: l.checked("redis.command_timeout", Duration::from_secs(5), positive),
            key_prefix: l.get("redis.key_prefix", "pitstop:".to_string()),
            channel: l.get("redis.channel", "pitstop:invalidations".to_string()),
        };
        let relay = RelayConfig {
            enabled: l.get("relay.enabled", true),
            consumer: l.checked("relay.consumer", "default".to_string(), non_empty),
            batch_size: l.profiled("relay.batch_size", p.batch_size, |n| {
                if (1..=100_000).contains(n) {
                    Ok(())
                } else {
                    Err(format!("{n} is outside 1..=100000"))
                }
            }),
            poll_interval: l.profiled("relay.poll_interval", p.poll_interval, positive),
            save_interval: l.profiled("relay.save_interval", p.save_interval, no_check),
            retention: l.get("relay.retention", Duration::from_secs(3600)),
            prune_interval: l.profiled("relay.prune_interval", p.prune_interval, positive),
        };
        let reconnect = ReconnectConfig {
            initial_delay: l.profiled("reconnect.initial_delay", p.initial_delay, positive),
            max_delay: l.profiled("reconnect.max_delay", p.max_delay, positive),
        };
        let http = HttpConfig {
            enabled: l.get("http.enabled", true),
            listen: l.get("http.listen", DEFAULT_LISTEN),
            console: l.get("http.console", false),
            allowed_hosts: l.get("http.allowed_hosts", AllowedHosts::default()),
        };
        let log = LogConfig {
            format: l.get("log.format", LogFormat::Plain),
            level: l.checked("log.level", "info".to_string(), |level| {
                tracing_subscriber::EnvFilter::try_new(level)
                    .map(|_| ())
                    .map_err(|e| format!("{level:?} is not a log level or filter: {e}"))
            }),
        };
        let (monitor, alerts) = monitor::read(l, &p);
        let maintenance = maintenance::read(l);
        let report = ReportConfig {
            statement_timeout: Some(
                l.get("report.statement_timeout", crate::db::CLI_STATEMENT_TIMEOUT),
            )
            .filter(|d| !d.is_zero()),
            exact_statement_timeout: Some(l.get("report.exact_statement_timeout", Duration::ZERO))
                .filter(|d| !d.is_zero()),
        };

        if redis.url.expose().len() > 1 && !redis.cluster {
            l.error("redis.url", "several URLs are only allowed with redis.cluster = true");
        }
        if redis.url.expose().iter().any(|u| u.contains("+unix") || u.starts_with("unix"))
            && redis.cluster
        {
            l.error("redis.url", "a Redis Cluster is reached over TCP, not a Unix socket");
        }
        if (redis.tls_ca_file.0.is_some() || redis.tls_insecure) && !redis.url.uses_tls() {
            l.error("redis.tls_ca_file", "TLS settings need a rediss:// URL");
        }
        if reconnect.initial_delay > reconnect.max_delay {
            l.error("reconnect.initial_delay", "must not exceed reconnect.max_delay");
        }
        Config {
            profile,
            postgres,
            redis,
            relay,
            reconnect,
            http,
            log,
            monitor,
            alerts,
            maintenance,
            report,
            shown: Vec::new(),
            file: None,
        }
    }

    /// Parses `text` (the file's contents, empty without a file) with `env` overrides.
    pub fn parse(
        text: &str,
        file_name: &str,
        env: BTreeMap<String, String>,
    ) -> Result<Config, Vec<ConfigError>> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            vec![ConfigError {
                path: file_name.to_string(),
                env: None,
                message: format!("not valid TOML: {}", e.to_string().trim()),
            }]
        })?;
        let mut loader = Loader::new(table, env);
        let mut config = Config::read(&mut loader);
        config.shown = loader.finish()?;
        Ok(config)
    }

    /// Loads the configuration: `path` if given (it must exist), else the default path if it
    /// exists and this user may read it, else built-in defaults; then the process's
    /// `PITSTOP_*` variables. (The packaged default file holds secrets and is readable by
    /// the daemon's group only: other users' commands run with the defaults, and are told.)
    pub fn load(path: Option<&Path>) -> Result<Config, Vec<ConfigError>> {
        let file = match path {
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from(DEFAULT_PATH)).filter(|p| match std::fs::File::open(p) {
                Ok(_) => true,
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    eprintln!("pitstop: {DEFAULT_PATH} is not readable by this user: using the built-in settings (--config FILE to choose one)");
                    false
                }
                Err(_) => p.exists(),
            }),
        };
        let text = match &file {
            Some(p) => std::fs::read_to_string(p).map_err(|e| {
                vec![ConfigError {
                    path: p.display().to_string(),
                    env: None,
                    message: format!("cannot read the configuration file: {e}"),
                }]
            })?,
            None => String::new(),
        };
        let name =
            file.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "(no file)".into());
        let mut config = Config::parse(&text, &name, process_env())?;
        config.file = file;
        Ok(config)
    }

    /// The effective configuration as TOML, secrets masked.
    pub fn render(&self) -> String {
        let source = match &self.file {
            Some(p) => format!("file {}", p.display()),
            None => "no file: built-in defaults".to_string(),
        };
        source::render(
            &self.shown,
            &format!("pitstop effective configuration ({source}, profile {})", self.profile.name()),
        )
    }

    /// Key paths whose effective value differs from `other`'s (secrets compared masked, so a
    /// changed password shows under its URL or DSN only if the rest changed too).
    pub fn changed_keys(&self, other: &Config) -> Vec<String> {
        let old: BTreeMap<&str, &toml::Value> =
            other.shown.iter().map(|s| (s.path.as_str(), &s.value)).collect();
        self.shown
            .iter()
            .filter(|s| old.get(s.path.as_str()) != Some(&&s.value))
            .map(|s| s.path.clone())
            .collect()
    }

    /// Why the relay does not run under this configuration, if it does not.
    pub fn relay_disabled_reason(&self) -> Option<&'static str> {
        if !self.relay.enabled {
            Some("relay.enabled = false")
        } else if self.redis.url.is_empty() {
            Some("no redis.url configured")
        } else {
            None
        }
    }
}

/// The `PITSTOP_*` variables of this process (non-Unicode ones are ignored).
fn process_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with("PITSTOP_"))
        .collect()
}

/// `pitstop check-config`: prints the effective configuration (exit 0) or every error (exit 1).
pub fn check_command(path: Option<&Path>) -> ExitCode {
    match Config::load(path) {
        Ok(config) => {
            print!("{}", config.render());
            println!("\n# postgres TLS: {}", config.postgres.tls_summary());
            if let Some(reason) = config.relay_disabled_reason() {
                println!("\n# note: the Redis relay will not run ({reason})");
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            report_errors(&errors);
            ExitCode::FAILURE
        }
    }
}

pub fn report_errors(errors: &[ConfigError]) {
    eprintln!(
        "error: invalid configuration ({} problem{}):",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
    for e in errors {
        eprintln!("  {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<Config, Vec<String>> {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::parse(text, "test.toml", env)
            .map_err(|errors| errors.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn defaults_are_balanced_and_valid() {
        let c = parse("", &[]).unwrap();
        assert_eq!(c.profile, Profile::Balanced);
        assert_eq!(c.relay.batch_size, 1000);
        assert_eq!(c.relay.poll_interval, Duration::from_secs(1));
        assert_eq!(c.http.listen, DEFAULT_LISTEN);
        assert_eq!(c.relay_disabled_reason(), Some("no redis.url configured"));
    }

    #[test]
    fn profiles_set_what_is_not_given() {
        let c = parse("profile = \"aggressive\"\n[relay]\nbatch_size = 7\n", &[]).unwrap();
        assert_eq!(c.relay.batch_size, 7, "explicit key wins over the profile");
        assert_eq!(c.relay.poll_interval, Duration::from_millis(200));
        assert_eq!(c.reconnect.max_delay, Duration::from_secs(5));
        let low = parse("", &[("PITSTOP_PROFILE", "low-overhead")]).unwrap();
        assert_eq!(low.profile, Profile::LowOverhead);
        assert_eq!(low.relay.poll_interval, Duration::from_secs(5));
        let text = low.render();
        let line = text.lines().find(|l| l.starts_with("poll_interval")).unwrap();
        assert!(
            line.starts_with("poll_interval = \"5s\"") && line.ends_with("# from the profile"),
            "{text}"
        );
    }

    #[test]
    fn every_bad_value_is_reported_with_its_key() {
        let errors = parse(
            "profile = \"turbo\"\n[redis]\nurl = \"http://x\"\n[relay]\nbatch_sise = 3\npoll_interval = \"fast\"\n[http]\nlisten = \"127.0.0.1:99999\"\n",
            &[],
        )
        .unwrap_err();
        let joined = errors.join("\n");
        for expected in [
            "profile: \"turbo\" is not one of balanced, low-overhead, aggressive",
            "redis.url: ",
            "relay.batch_sise: unknown key",
            "relay.poll_interval: \"fast\" is not a duration",
            "http.listen: bad port 99999",
        ] {
            assert!(joined.contains(expected), "missing {expected:?} in:\n{joined}");
        }
        assert_eq!(errors.len(), 5, "{joined}");
    }

    #[test]
    fn environment_overrides_and_their_errors() {
        let c = parse(
            "[http]\nlisten = \"127.0.0.1:1\"\n",
            &[("PITSTOP_HTTP_LISTEN", "127.0.0.1:2"), ("PITSTOP_REDIS_URL", "redis://h:1")],
        )
        .unwrap();
        assert_eq!(c.http.listen.port(), 2);
        assert_eq!(c.redis.url.expose(), ["redis://h:1"]);
        let errors =
            parse("", &[("PITSTOP_HTTP_LISTEN", "nonsense"), ("PITSTOP_RELAY_BATCHSIZE", "1")])
                .unwrap_err();
        assert_eq!(
            errors,
            [
                "http.listen: \"nonsense\" is not an address:port such as \"127.0.0.1:9247\" (from PITSTOP_HTTP_LISTEN)",
                "relay.batchsize: unknown key (from PITSTOP_RELAY_BATCHSIZE)"
            ]
        );
    }

    #[test]
    fn cross_field_rules() {
        let errors = parse("[redis]\nurl = \"redis://a:1,redis://b:2\"\n[reconnect]\ninitial_delay = \"1m\"\nmax_delay = \"1s\"\n", &[]).unwrap_err();
        assert!(errors[0].starts_with("redis.url: several URLs"), "{errors:?}");
        assert!(errors[1].starts_with("reconnect.initial_delay: must not exceed"), "{errors:?}");
        assert!(parse("[redis]\nurl = \"redis://a:1,redis://b:2\"\ncluster = true\n", &[]).is_ok());
        let tls = parse("[redis]\nurl = \"redis://a:1\"\ntls_insecure = true\n", &[]).unwrap_err();
        assert!(tls[0].contains("need a rediss:// URL"), "{tls:?}");
        assert!(
            parse("[relay]\nbatch_size = 0\n", &[]).unwrap_err()[0].contains("outside 1..=100000")
        );
        assert!(parse("[log]\nlevel = \"loud=[\"\n", &[]).unwrap_err()[0].starts_with("log.level:"));
    }

    #[test]
    fn syntax_errors_name_the_file_and_line() {
        let errors = parse("[http\nlisten = 1", &[]).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("test.toml: not valid TOML") && errors[0].contains("line 1"),
            "{errors:?}"
        );
    }

    #[test]
    fn rendering_masks_secrets_and_parses_back() {
        let c = parse(
            "[postgres]\ndsn = \"host=db password=pg-secret\"\n[redis]\nurl = \"redis://:redis-secret@cache:6379\"\npassword = \"other-secret\"\n",
            &[],
        )
        .unwrap();
        let text = c.render();
        assert!(!text.contains("secret"), "{text}");
        assert!(
            text.contains("password=********") && text.contains("redis://:********@cache:6379"),
            "{text}"
        );
        // What check-config prints is itself a valid configuration (secrets aside).
        assert!(parse(&text, &[]).is_ok(), "{text}");
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn the_webhook_url_is_masked_like_a_password() {
        let secret = "https://hooks.slack.com/services/T0000/B0000/XXXXsecretTOKENxxxx";
        let c = parse(&format!("[alerts]\nwebhook_url = {secret:?}\n"), &[]).unwrap();
        let text = c.render();
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("webhook_url = \"https://hooks.slack.com/********\""), "{text}");
        assert!(parse(&text, &[]).is_ok(), "{text}");
        assert!(!format!("{c:?}").contains("secret"));
        assert_eq!(c.alerts.webhook_url.as_ref().and_then(|u| u.expose()), Some(secret));
        // Not a URL pitstop sends to: the error does not print the token either.
        let errors = parse("[alerts]\nwebhook_url = \"hxxps://hooks.example/secret-token\"\n", &[])
            .unwrap_err();
        assert!(!errors.join("\n").contains("secret") && errors.len() == 1, "{errors:?}");
    }

    #[test]
    fn the_example_file_documents_every_key_with_its_default() {
        let example = include_str!("../../pitstop.example.toml");
        let documented = parse(example, &[]).unwrap();
        let defaults = parse("", &[]).unwrap();
        assert_eq!(
            documented.changed_keys(&defaults),
            Vec::<String>::new(),
            "the example must show the defaults"
        );
        let table: toml::Table = example.parse().unwrap();
        for s in &defaults.shown {
            assert!(
                source::lookup(&table, &s.path).is_some(),
                "{} is not in pitstop.example.toml",
                s.path
            );
        }
    }

    #[test]
    fn changed_keys_are_listed() {
        let a = parse("", &[]).unwrap();
        let b = parse("profile = \"aggressive\"\n[log]\nlevel = \"debug\"\n", &[]).unwrap();
        let changed = b.changed_keys(&a);
        assert!(
            changed.contains(&"profile".to_string()) && changed.contains(&"log.level".to_string())
        );
        assert!(changed.contains(&"relay.poll_interval".to_string()));
        assert!(!changed.contains(&"http.listen".to_string()));
    }
}
