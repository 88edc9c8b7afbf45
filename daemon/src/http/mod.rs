//! The daemon's HTTP endpoints (loopback by default): `/healthz` (the process answers),
//! `/readyz` (Postgres reachable; Redis and relay state shown), `/metrics` (Prometheus text),
//! `/status` (JSON), the DBA console (`console`: `/` the overview, the other pages, their
//! JSON under `/api/`) and `/host`, the daemon's own status page (`dashboard`). Only requests
//! whose Host header names this daemon are served (`host`: DNS rebinding).

pub mod console;
pub mod dashboard;
pub mod host;
pub mod metrics;

use crate::config::Config;
use crate::service::state::{Health, State};
use axum::extract::State as Shared;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;

/// Connections served at once; more wait in the listen backlog (the kernel's, no descriptor of
/// ours) until one closes. Far below the unit's LimitNOFILE (8192): the port is open to every
/// local user, and the relay, the monitor, maintenance and webhooks need descriptors too.
pub const MAX_CONNECTIONS: usize = 256;

/// How long a connection may take to send a request's headers, and how long a kept-alive
/// connection may sit idle before its next request: then it is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection may make no progress writing a response (a peer that does not read
/// it): then it is closed. Without it a peer that pipelines requests and never reads holds its
/// connection, one of `MAX_CONNECTIONS`, for as long as it likes (review R17 finding 2).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long any connection is served, however busy: then it is closed (a client opens another).
pub const MAX_LIFETIME: Duration = Duration::from_secs(300);

/// How long a stop waits for requests under way before closing their connections.
const DRAIN: Duration = Duration::from_secs(5);

/// Without the console (`http.console`), `/` is the status page that `/host` is with it.
pub fn router(
    state: Arc<State>,
    console: Option<Arc<console::Console>>,
    hosts: Arc<host::Hosts>,
) -> Router {
    let base = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus))
        .route("/status", get(status));
    let app = match console {
        Some(console) => base
            .route("/host", get(dashboard::page))
            .with_state(state)
            .merge(console::routes(console)),
        None => base
            .route("/", get(dashboard::page_alone))
            .route("/host", get(dashboard::page_alone))
            .with_state(state),
    };
    app.layer(axum::middleware::from_fn_with_state(hosts, host::check))
}

/// Serves until `cancel` fires; answers only to the Host names of `host` (the listening
/// address, localhost, and `allowed_hosts`). The console reads with `config`'s connection
/// settings and computes what is heavy in the background meanwhile.
pub async fn serve(
    listener: TcpListener,
    allowed_hosts: Vec<host::Authority>,
    state: Arc<State>,
    config: watch::Receiver<Arc<Config>>,
    cancel: CancellationToken,
) {
    let listen = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            tracing::error!("http: cannot read the listening address: {e}");
            return;
        }
    };
    let hosts = Arc::new(host::Hosts::new(listen, allowed_hosts));
    // Read once: turning the console on or off takes a restart.
    let with_console = config.borrow().http.console;
    let console = with_console.then(|| Arc::new(console::Console::new(state.clone(), config)));
    let background = console.clone().map(|c| tokio::spawn(c.background(cancel.clone())));
    serve_connections(listener, router(state, console, hosts), &cancel).await;
    if let Some(background) = background {
        background.abort();
    }
}

/// Accepts connections while fewer than `MAX_CONNECTIONS` are open, each bounded by
/// `HEADER_READ_TIMEOUT`, `WRITE_TIMEOUT` and `MAX_LIFETIME`, until `cancel` fires; then lets requests under way finish for at most
/// `DRAIN`.
async fn serve_connections(listener: TcpListener, app: Router, cancel: &CancellationToken) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    loop {
        let permit = tokio::select! {
            _ = cancel.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it was accepted.
                    tracing::warn!("http: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let stream = Progressing::new(stream, WRITE_TIMEOUT);
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            match tokio::time::timeout(MAX_LIFETIME, connection).await {
                Ok(Err(e)) => tracing::debug!("http: connection ended: {e}"),
                Ok(Ok(())) => {}
                Err(_) => tracing::debug!("http: connection closed after {MAX_LIFETIME:?}"),
            }
            drop(permit);
        });
    }
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::info!("http: requests still under way after {DRAIN:?} are dropped");
    }
}

/// A stream whose writes must make progress: a write that stays pending for `limit` fails
/// with `TimedOut`, and hyper closes the connection.
struct Progressing<S> {
    inner: S,
    limit: Duration,
    /// Armed while a write is pending; disarmed by any write that completes.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> Progressing<S> {
    fn new(inner: S, limit: Duration) -> Self {
        Progressing { inner, limit, stalled: None }
    }

    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let limit = self.limit;
        let timer = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.stalled = None;
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the peer read nothing for {limit:?}"),
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Progressing<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Progressing<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    // A socket's flush and shutdown do not wait for the peer.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(Shared(state): Shared<Arc<State>>) -> Response {
    let ready = state.postgres.health() == Health::Up;
    let body = json!({
        "ready": ready,
        "postgres": state.postgres.health(),
        "redis": state.redis.health(),
        "relay": state.relay.health(),
    });
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body)).into_response()
}

async fn prometheus(Shared(state): Shared<Arc<State>>) -> Response {
    let text = metrics::render(&metrics::Snapshot::of(&state));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

async fn status(Shared(state): Shared<Arc<State>>) -> Json<serde_json::Value> {
    Json(status_json(&state))
}

pub fn status_json(state: &State) -> serde_json::Value {
    use crate::service::state::read;
    let c = &state.counters;
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.uptime().as_secs_f64(),
        "profile": state.profile(),
        "extension": state.extension(),
        "components": {
            "postgres": state.postgres.get(),
            "redis": state.redis.get(),
            "relay": state.relay.get(),
            "monitor": state.monitor.get(),
        },
        "relay": {
            "lag_seconds": state.relay_lag().as_secs_f64(),
            "delivered": read(&c.delivered),
            "batches": read(&c.batches),
            "rounds": read(&c.rounds),
            "pruned": read(&c.pruned),
            "errors": { "postgres": read(&c.postgres_errors), "redis": read(&c.redis_errors) },
        },
        "monitor": crate::monitor::live::status_json(&state.live.view()),
        "config_reloads": { "applied": read(&c.reloads_applied), "rejected": read(&c.reloads_rejected) },
        "maintenance": { "state": state.maintenance.get(), "jobs": state.maintenance_jobs() },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A client that pipelines requests and never reads loses its connection after
    /// `WRITE_TIMEOUT` (review R17 finding 2).
    #[tokio::test]
    async fn a_client_that_never_reads_is_disconnected() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/x", get(|| async { "y".repeat(10_000) }));
        let cancel = CancellationToken::new();
        let server = tokio::spawn({
            let cancel = cancel.clone();
            async move { serve_connections(listener, app, &cancel).await }
        });
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(1).unwrap();
        let mut stream = socket.connect(addr).await.unwrap();
        let request = "GET /x HTTP/1.1\r\nHost: a\r\n\r\n".repeat(2000);
        let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(request.as_bytes()))
            .await;
        tokio::time::sleep(WRITE_TIMEOUT + Duration::from_secs(3)).await;
        // The daemon closed it: reading what was sent ends (end of stream or a reset).
        let mut buf = vec![0u8; 1 << 16];
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "the connection is still open");
        cancel.cancel();
        let _ = server.await;
    }
}
