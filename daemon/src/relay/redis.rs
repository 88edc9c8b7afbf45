//! The relay's Redis side: one server (a multiplexed connection, commands pipelined) or a
//! Redis Cluster (the cluster client routes each command to its slot's node; commands are
//! sent concurrently, which pipelines them per node). AUTH through the URL or
//! `redis.password`; TLS through `rediss://` with an optional CA file.

use super::outbox::Row;
use super::plan::{self, Command, Conventions};
use crate::config::RedisConfig;
use redis::aio::MultiplexedConnection;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionInfo, IntoConnectionInfo, RedisError,
    RedisResult, TlsCertificates, Value,
};

pub enum Sink {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

/// Errors in the data rather than in Redis (an application stored a string under a tag key,
/// or text under a version key): reported and skipped, since retrying cannot fix them and
/// must not stop every other invalidation.
fn is_data_error(e: &RedisError) -> bool {
    matches!(e.code(), Some("WRONGTYPE"))
        || (e.code() == Some("ERR") && e.detail().is_some_and(|d| d.contains("not an integer")))
}

fn describe(e: &RedisError) -> String {
    e.to_string()
}

fn to_cmd(c: &Command) -> Cmd {
    let mut words = c.0.iter();
    let mut cmd = redis::cmd(
        std::str::from_utf8(words.next().map(Vec::as_slice).unwrap_or(b"PING")).unwrap_or("PING"),
    );
    for w in words {
        cmd.arg(w.as_slice());
    }
    cmd
}

/// Connection details for one URL, with `redis.password` applied and `#insecure` for
/// `redis.tls_insecure`.
fn connection_info(url: &str, cfg: &RedisConfig) -> RedisResult<ConnectionInfo> {
    let url = if cfg.tls_insecure && url.starts_with("rediss://") && !url.contains('#') {
        format!("{url}#insecure")
    } else {
        url.to_string()
    };
    let info = url.as_str().into_connection_info()?;
    // Pipelines go out at once, not behind Nagle's algorithm.
    let info = info.clone().set_tcp_settings(info.tcp_settings().clone().set_nodelay(true));
    Ok(match cfg.password.expose() {
        Some(password) => {
            let settings = info.redis_settings().clone().set_password(password);
            info.set_redis_settings(settings)
        }
        None => info,
    })
}

fn certificates(cfg: &RedisConfig) -> Result<Option<TlsCertificates>, String> {
    match &cfg.tls_ca_file.0 {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read redis.tls_ca_file {}: {e}", path.display()))?;
            Ok(Some(TlsCertificates { client_tls: None, root_cert: Some(pem) }))
        }
        None => Ok(None),
    }
}

impl Sink {
    pub async fn connect(cfg: &RedisConfig) -> Result<Sink, String> {
        // rustls needs a process-wide crypto provider for rediss:// (ring; set once).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let certs = certificates(cfg)?;
        let urls = cfg.url.expose();
        let mut sink = if cfg.cluster {
            let infos = urls
                .iter()
                .map(|u| connection_info(u, cfg))
                .collect::<RedisResult<Vec<_>>>()
                .map_err(|e| describe(&e))?;
            let mut builder = ClusterClientBuilder::new(infos)
                .connection_timeout(cfg.connect_timeout)
                .response_timeout(cfg.command_timeout)
                .tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true))
                .retries(2);
            if let Some(password) = cfg.password.expose() {
                builder = builder.password(password);
            }
            if cfg.url.uses_tls() {
                builder = builder.tls(if cfg.tls_insecure {
                    redis::TlsMode::Insecure
                } else {
                    redis::TlsMode::Secure
                });
            }
            if let Some(certs) = certs {
                builder = builder.certs(certs);
            }
            let client = builder.build().map_err(|e| describe(&e))?;
            Sink::Cluster(client.get_async_connection().await.map_err(|e| describe(&e))?)
        } else {
            let url = urls.first().ok_or("no redis.url")?;
            let info = connection_info(url, cfg).map_err(|e| describe(&e))?;
            let client = match certs {
                Some(certs) => Client::build_with_tls(info, certs),
                None => Client::open(info),
            }
            .map_err(|e| describe(&e))?;
            let options = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(cfg.connect_timeout))
                .set_response_timeout(Some(cfg.command_timeout));
            let connect = client.get_multiplexed_async_connection_with_config(&options);
            let connection = tokio::time::timeout(cfg.connect_timeout, connect)
                .await
                .map_err(|_| "no answer from Redis within redis.connect_timeout".to_string())?
                .map_err(|e| describe(&e))?;
            Sink::Single(connection)
        };
        sink.run(&[Command(vec![b"PING".to_vec()])]).await?;
        Ok(sink)
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Sink::Cluster(_))
    }

    /// Applies one batch; Ok only when Redis acknowledged every command.
    pub async fn apply(&mut self, rows: &[Row], conv: &Conventions) -> Result<(), String> {
        let tags = plan::distinct_tags(rows);
        let reads = plan::member_reads(conv, &tags);
        let members: Vec<Vec<Vec<u8>>> = self
            .run(&reads)
            .await?
            .into_iter()
            .map(|v| redis::from_redis_value::<Vec<Vec<u8>>>(v).unwrap_or_default())
            .collect();
        let writes = plan::writes(conv, rows, &tags, &members);
        match self {
            // One server runs a pipeline in order: the announcements follow the deletions.
            Sink::Single(_) => {
                let all: Vec<Command> =
                    writes.invalidations.into_iter().chain(writes.announcements).collect();
                self.run(&all).await?;
            }
            Sink::Cluster(_) => {
                self.run(&writes.invalidations).await?;
                self.run(&writes.announcements).await?;
            }
        }
        Ok(())
    }

    /// Runs `commands`, returning their replies; data errors become Nil (logged), any other
    /// error fails the whole call.
    async fn run(&mut self, commands: &[Command]) -> Result<Vec<Value>, String> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        let replies: Vec<RedisResult<Value>> = match self {
            Sink::Single(connection) => {
                let mut pipe = redis::pipe();
                pipe.ignore_errors();
                for c in commands {
                    pipe.add_command(to_cmd(c));
                }
                pipe.query_async(connection).await.map_err(|e| describe(&e))?
            }
            Sink::Cluster(connection) => {
                let calls = commands.iter().map(|c| {
                    let mut connection = connection.clone();
                    async move { to_cmd(c).query_async::<Value>(&mut connection).await }
                });
                futures_util::future::join_all(calls).await
            }
        };
        replies
            .into_iter()
            .zip(commands)
            .map(|(reply, command)| match reply {
                Ok(v) => Ok(v),
                Err(e) if is_data_error(&e) => {
                    let key = command.0.get(1).map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
                    tracing::warn!("relay: skipped {} on {key:?}: {e} (the application stored something else under this key)", String::from_utf8_lossy(&command.0[0]));
                    Ok(Value::Nil)
                }
                Err(e) => Err(describe(&e)),
            })
            .collect()
    }
}
