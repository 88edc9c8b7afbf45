//! The clients' sessions, on a socket that wakes a client only when the server has answered.
//!
//! tokio registers a socket for readability and writability, edge-triggered. Each time the
//! server reads a request, the send buffer it frees is a new writability edge, so every
//! statement woke the client's thread twice: once for nothing (an epoll_wait and a context
//! switch), once for the answer. pgbench waits for readability alone. So does this socket:
//! reads go through a registration for readability only, writes straight to the socket, and
//! only a write that would block registers a duplicate for writability, until that write has
//! gone through.
//!
//! tokio's one safe way to register a descriptor for a single direction is its pipe ends,
//! which do nothing but read(2)/write(2) and register with one interest: the socket's
//! duplicates are wrapped in them (`AsyncFd` needs `unsafe` since tokio 1.54, and the daemon
//! has none).
//!
//! Used, with the protocol loop of [`super::wire`], for a session without TLS to one host (a
//! Unix socket, or TCP with sslmode=disable); any other goes through the driver
//! ([`crate::db::connect`]).

use super::wire::{Startup, Wire};
use crate::db::Target;
use anyhow::{anyhow, Context as _, Result};
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::unix::pipe;
use tokio_postgres::config::{ChannelBinding, Host, SslMode, TargetSessionAttrs};

enum Socket {
    Unix(std::os::unix::net::UnixStream),
    Tcp(std::net::TcpStream),
}

impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Socket::Unix(s) => s.as_fd(),
            Socket::Tcp(s) => s.as_fd(),
        }
    }
}

impl Socket {
    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Socket::Unix(s) => (&*s).write(buf),
            Socket::Tcp(s) => (&*s).write(buf),
        }
    }

    fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Socket::Unix(s) => s.shutdown(std::net::Shutdown::Write),
            Socket::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
        }
    }
}

/// A nonblocking socket whose client is woken by readability only (see the module's comment).
pub struct ReadWoken {
    /// A duplicate of `socket`, registered for readability.
    reader: pipe::Receiver,
    /// Written to directly, never registered.
    socket: Socket,
    /// A duplicate registered for writability while a write would block.
    blocked_write: Option<pipe::Sender>,
    /// Writes that would have blocked.
    #[cfg(test)]
    blocked_writes: u64,
}

impl ReadWoken {
    /// Takes a nonblocking socket; in a runtime.
    fn new(socket: Socket) -> io::Result<ReadWoken> {
        let reader = pipe::Receiver::from_owned_fd_unchecked(socket.as_fd().try_clone_to_owned()?)?;
        Ok(ReadWoken {
            reader,
            socket,
            blocked_write: None,
            #[cfg(test)]
            blocked_writes: 0,
        })
    }
}

impl AsyncRead for ReadWoken {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.reader).poll_read(cx, buf)
    }
}

impl AsyncWrite for ReadWoken {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        loop {
            if let Some(writer) = &mut this.blocked_write {
                let result = ready!(Pin::new(writer).poll_write(cx, buf));
                // Deregistered: writability wakes nobody again.
                this.blocked_write = None;
                return Poll::Ready(result);
            }
            match this.socket.write(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    #[cfg(test)]
                    {
                        this.blocked_writes += 1;
                    }
                    this.blocked_write = Some(pipe::Sender::from_owned_fd_unchecked(
                        this.socket.as_fd().try_clone_to_owned()?,
                    )?);
                }
                result => return Poll::Ready(result),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.socket.shutdown_write())
    }
}

/// The one host of a target this socket can serve, or None (TLS possible, several hosts, or
/// what only the driver checks: channel binding required, a session attribute to match).
fn direct_host(target: &Target) -> Option<(Host, u16)> {
    let config = &target.config;
    if config.get_channel_binding() == ChannelBinding::Require
        || config.get_target_session_attrs() != TargetSessionAttrs::Any
    {
        return None;
    }
    let port = match config.get_ports() {
        [] => 5432,
        [port] => *port,
        _ => return None,
    };
    match config.get_hosts() {
        [host]
            if config.get_hostaddrs().is_empty() && config.get_ssl_mode() == SslMode::Disable =>
        {
            Some((host.clone(), port))
        }
        _ => None,
    }
}

async fn open_socket(host: &Host, port: u16) -> io::Result<Socket> {
    match host {
        Host::Unix(dir) => {
            let stream =
                tokio::net::UnixStream::connect(dir.join(format!(".s.PGSQL.{port}"))).await?;
            Ok(Socket::Unix(stream.into_std()?))
        }
        Host::Tcp(name) => {
            let mut last =
                io::Error::new(io::ErrorKind::NotFound, format!("{name} resolves to no address"));
            for address in tokio::net::lookup_host((name.as_str(), port)).await? {
                match tokio::net::TcpStream::connect(address).await {
                    Ok(stream) => {
                        stream.set_nodelay(true)?;
                        return Ok(Socket::Tcp(stream.into_std()?));
                    }
                    Err(e) => last = e,
                }
            }
            Err(last)
        }
    }
}

/// A client's session: the protocol loop of [`super::wire`] on a [`ReadWoken`] socket for a
/// plaintext session to one host, else tokio-postgres (TLS, several hosts).
pub async fn connect(target: &Target) -> Result<super::run::Conn> {
    let Some((host, port)) = direct_host(target) else {
        return Ok(super::run::Conn::Driver(crate::db::connect(target).await?));
    };
    let config = &target.config;
    let user = config.get_user().ok_or_else(|| anyhow!("no user to connect as"))?;
    let startup = Startup {
        user,
        database: config.get_dbname(),
        application_name: config.get_application_name(),
        options: config.get_options(),
        password: config.get_password(),
    };
    let open = async {
        let socket = open_socket(&host, port).await.map_err(|e| anyhow!("{e}"))?;
        let stream = ReadWoken::new(socket)?;
        Wire::start(stream, &startup).await.map_err(|e| anyhow!("{}", e.describe()))
    };
    let wire = match config.get_connect_timeout() {
        Some(limit) => tokio::time::timeout(*limit, open)
            .await
            .map_err(|_| anyhow!("timeout after {} s", limit.as_secs_f64()))?,
        None => open.await,
    }
    .context("cannot connect to PostgreSQL")?;
    Ok(super::run::Conn::Direct(wire))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn only_a_plaintext_session_to_one_host_is_direct() {
        let target = |conninfo: &str, ssl: SslMode| {
            let mut config: tokio_postgres::Config = conninfo.parse().unwrap();
            config.ssl_mode(ssl);
            Target {
                config,
                tls: crate::db::tls::TlsSettings::from_params(&Default::default(), None).unwrap(),
                pin_search_path: false,
            }
        };
        assert_eq!(
            direct_host(&target("host=/tmp port=5433", SslMode::Disable)),
            Some((Host::Unix("/tmp".into()), 5433))
        );
        assert_eq!(
            direct_host(&target("host=db.example", SslMode::Disable)),
            Some((Host::Tcp("db.example".into()), 5432))
        );
        assert_eq!(direct_host(&target("host=db.example", SslMode::Prefer)), None);
        assert_eq!(direct_host(&target("host=a,b", SslMode::Disable)), None);
        assert_eq!(direct_host(&target("host=a hostaddr=127.0.0.1", SslMode::Disable)), None);
        assert_eq!(direct_host(&target("host=a channel_binding=require", SslMode::Disable)), None);
        assert_eq!(
            direct_host(&target("host=a target_session_attrs=read-write", SslMode::Disable)),
            None
        );
    }

    /// The epoll interest masks registered for `fd` in this process (from /proc/self/fdinfo;
    /// a set, as tokio holds its epoll instance under two descriptors).
    fn epoll_masks(fd: std::os::fd::RawFd) -> std::collections::BTreeSet<u32> {
        let mut masks = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir("/proc/self/fdinfo").unwrap().flatten() {
            for line in std::fs::read_to_string(entry.path()).unwrap_or_default().lines() {
                let words: Vec<&str> = line.split_whitespace().collect();
                if let ["tfd:", target, "events:", events, ..] = words[..] {
                    if target == fd.to_string() {
                        masks.insert(u32::from_str_radix(events, 16).unwrap());
                    }
                }
            }
        }
        masks
    }

    const EPOLLIN: u32 = 0x1;
    const EPOLLOUT: u32 = 0x4;

    fn pair() -> (ReadWoken, tokio::net::UnixStream) {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        theirs.set_nonblocking(true).unwrap();
        (
            ReadWoken::new(Socket::Unix(ours)).unwrap(),
            tokio::net::UnixStream::from_std(theirs).unwrap(),
        )
    }

    /// The point of it all: the session's socket is registered for readability and not for
    /// writability, where the driver's own socket is registered for both.
    #[test]
    fn the_socket_is_registered_for_readability_only() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let (ours, theirs) = pair();
            use std::os::fd::AsRawFd;
            let masks = epoll_masks(ours.reader.as_raw_fd());
            assert!(
                !masks.is_empty() && masks.iter().all(|m| m & (EPOLLIN | EPOLLOUT) == EPOLLIN),
                "{masks:x?}"
            );
            assert!(
                epoll_masks(ours.socket.as_fd().as_raw_fd()).is_empty(),
                "the written socket is not registered"
            );
            // What tokio's own sockets do (and why this module exists).
            let masks = epoll_masks(theirs.as_raw_fd());
            assert!(
                !masks.is_empty()
                    && masks.iter().all(|m| m & (EPOLLIN | EPOLLOUT) == EPOLLIN | EPOLLOUT),
                "{masks:x?}"
            );
        });
    }

    /// Reads and writes go through; a write the peer does not read yet waits for writability
    /// and finishes once the peer reads, then writability is deregistered again.
    #[test]
    fn a_blocked_write_waits_for_the_peer_and_reads_still_arrive() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let (mut ours, mut theirs) = pair();
            ours.write_all(b"ping").await.unwrap();
            let mut four = [0u8; 4];
            theirs.read_exact(&mut four).await.unwrap();
            assert_eq!(&four, b"ping");
            theirs.write_all(b"pong").await.unwrap();
            ours.read_exact(&mut four).await.unwrap();
            assert_eq!(&four, b"pong");
            assert_eq!(ours.blocked_writes, 0);

            // More than the socket buffers hold: the write blocks until the peer reads.
            let big: Vec<u8> = (0..8u32 << 20).map(|i| i as u8).collect();
            let writer = async {
                ours.write_all(&big).await.unwrap();
                ours
            };
            let reader = async {
                let mut got = vec![0u8; big.len()];
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                theirs.read_exact(&mut got).await.unwrap();
                (theirs, got)
            };
            let (mut ours, (mut theirs, got)) =
                tokio::time::timeout(std::time::Duration::from_secs(20), async {
                    tokio::join!(writer, reader)
                })
                .await
                .expect("the blocked write finished");
            assert!(got == big, "the bytes arrive whole and in order");
            assert!(ours.blocked_writes > 0, "the write did block");
            assert!(ours.blocked_write.is_none(), "writability deregistered after the write");

            // Reads still arrive afterwards; shutdown ends the peer's read.
            theirs.write_all(b"done").await.unwrap();
            ours.read_exact(&mut four).await.unwrap();
            assert_eq!(&four, b"done");
            ours.shutdown().await.unwrap();
            let mut rest = Vec::new();
            theirs.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty());
        });
    }
}
