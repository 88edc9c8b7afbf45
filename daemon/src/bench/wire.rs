//! The clients' protocol loop for a plaintext session to one host: the messages libpq sends
//! for pgbench, encoded and parsed with `postgres-protocol` (what tokio-postgres itself uses),
//! written and read by the client's own task. No request channel, no response channel, no
//! connection task: a statement is one write and reads until ReadyForQuery.
//!
//! Prepared (`--prepared`): Parse once per statement, then Bind/Execute/Sync with the
//! parameters as text. Simple: one Query message. Authentication: trust, cleartext password,
//! md5 and SCRAM-SHA-256 (without channel binding: there is no TLS here). TLS and several
//! hosts stay on tokio-postgres ([`super::socket`]).

use super::socket::ReadWoken;
use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::backend::{ErrorResponseBody, Message};
use postgres_protocol::message::frontend;
use postgres_protocol::IsNull;
use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What went wrong with a request.
#[derive(Debug, PartialEq)]
pub enum WireError {
    /// The server answered with an error: SQLSTATE, severity and message.
    Server { code: String, severity: String, message: String },
    /// The connection is gone (or spoke nonsense): it cannot go on.
    Lost(String),
}

impl WireError {
    pub fn describe(&self) -> String {
        match self {
            WireError::Server { code, message, .. } => format!("{message} (SQLSTATE {code})"),
            WireError::Lost(why) => why.clone(),
        }
    }

    /// A server error after which the server closes the session (FATAL, PANIC).
    fn is_fatal(&self) -> bool {
        matches!(self, WireError::Server { severity, .. } if severity == "FATAL" || severity == "PANIC")
    }
}

fn server_error(body: &ErrorResponseBody) -> WireError {
    let (mut code, mut severity, mut message) = (String::new(), String::new(), String::new());
    let mut fields = body.fields();
    while let Ok(Some(field)) = fields.next() {
        match field.type_() {
            b'C' => code = String::from_utf8_lossy(field.value_bytes()).into_owned(),
            // 'V' is never localized; 'S' is, and older servers send only it.
            b'V' => severity = String::from_utf8_lossy(field.value_bytes()).into_owned(),
            b'S' if severity.is_empty() => {
                severity = String::from_utf8_lossy(field.value_bytes()).into_owned()
            }
            b'M' => message = String::from_utf8_lossy(field.value_bytes()).into_owned(),
            _ => {}
        }
    }
    WireError::Server { code, severity, message }
}

fn lost(e: io::Error) -> WireError {
    WireError::Lost(format!("connection lost: {e}"))
}

/// A session: the socket and its two reused buffers.
pub struct Wire<S> {
    stream: S,
    read: BytesMut,
    write: BytesMut,
    /// Whether the request being answered is an extended-protocol one (it ends with Sync).
    extended: bool,
}

/// The longest message accepted from the server, as PostgreSQL's own allocation limit: a
/// length field beyond it is a broken or hostile server, not a reason to reserve gigabytes.
const MAX_MESSAGE_BYTES: usize = 0x3fff_ffff;

/// What a session needs to start.
pub struct Startup<'a> {
    pub user: &'a str,
    pub database: Option<&'a str>,
    pub application_name: Option<&'a str>,
    pub options: Option<&'a str>,
    pub password: Option<&'a [u8]>,
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> Wire<S> {
    /// Starts the session: the startup message, authentication, then the server's parameters
    /// until it is ready for a query.
    pub async fn start(stream: S, startup: &Startup<'_>) -> Result<Wire<S>, WireError> {
        let mut wire = Wire {
            stream,
            read: BytesMut::with_capacity(8192),
            write: BytesMut::with_capacity(1024),
            extended: false,
        };
        let mut parameters = vec![("client_encoding", "UTF8"), ("user", startup.user)];
        parameters.extend(startup.database.map(|d| ("database", d)));
        parameters.extend(startup.options.map(|o| ("options", o)));
        parameters.extend(startup.application_name.map(|a| ("application_name", a)));
        frontend::startup_message(parameters, &mut wire.write).map_err(lost)?;
        wire.flush().await?;
        wire.authenticate(startup).await?;
        loop {
            match wire.next().await? {
                Message::ReadyForQuery(_) => return Ok(wire),
                Message::ErrorResponse(body) => return Err(server_error(&body)),
                // ParameterStatus, BackendKeyData, NoticeResponse.
                _ => {}
            }
        }
    }

    async fn authenticate(&mut self, startup: &Startup<'_>) -> Result<(), WireError> {
        let password = || {
            startup.password.ok_or_else(|| WireError::Lost("the server asks for a password and none was given (password=, PGPASSWORD or the password file)".into()))
        };
        let mut scram: Option<sasl::ScramSha256> = None;
        let mut server_proved_itself = false;
        loop {
            match self.next().await? {
                // A server that starts SCRAM must prove it knows the password before it may
                // let us in: otherwise anyone answering on that address could.
                Message::AuthenticationOk if scram.is_some() && !server_proved_itself => {
                    return Err(WireError::Lost("SCRAM: the server ended authentication without its final message".into()));
                }
                Message::AuthenticationOk => return Ok(()),
                Message::AuthenticationCleartextPassword => {
                    frontend::password_message(password()?, &mut self.write).map_err(lost)?;
                }
                Message::AuthenticationMd5Password(body) => {
                    let hash = md5_hash(startup.user.as_bytes(), password()?, body.salt());
                    frontend::password_message(hash.as_bytes(), &mut self.write).map_err(lost)?;
                }
                Message::AuthenticationSasl(body) => {
                    let mut mechanisms = body.mechanisms();
                    let mut offered = false;
                    while let Some(m) = mechanisms.next().map_err(lost)? {
                        offered |= m == sasl::SCRAM_SHA_256;
                    }
                    if !offered {
                        return Err(WireError::Lost("the server offers no SASL mechanism but SCRAM-SHA-256 with channel binding, which needs TLS".into()));
                    }
                    // No TLS, so no channel binding ("n", as libpq without TLS).
                    let s = sasl::ScramSha256::new(password()?, sasl::ChannelBinding::unsupported());
                    frontend::sasl_initial_response(sasl::SCRAM_SHA_256, s.message(), &mut self.write).map_err(lost)?;
                    scram = Some(s);
                }
                Message::AuthenticationSaslContinue(body) => {
                    let s = scram.as_mut().ok_or_else(|| WireError::Lost("SASL continue before SASL started".into()))?;
                    s.update(body.data()).map_err(|e| WireError::Lost(format!("SCRAM: {e}")))?;
                    frontend::sasl_response(s.message(), &mut self.write).map_err(lost)?;
                }
                Message::AuthenticationSaslFinal(body) => {
                    let s = scram.as_mut().ok_or_else(|| WireError::Lost("SASL final before SASL started".into()))?;
                    s.finish(body.data()).map_err(|e| WireError::Lost(format!("SCRAM: the server's signature does not verify: {e}")))?;
                    server_proved_itself = true;
                    continue;
                }
                Message::ErrorResponse(body) => return Err(server_error(&body)),
                _ => return Err(WireError::Lost("unsupported authentication method (trust, password, md5 and scram-sha-256 are)".into())),
            }
            self.flush().await?;
        }
    }

    /// Writes what the buffer holds.
    async fn flush(&mut self) -> Result<(), WireError> {
        let result = self.stream.write_all(&self.write).await;
        self.write.clear();
        result.map_err(lost)
    }

    /// The next message from the server.
    async fn next(&mut self) -> Result<Message, WireError> {
        loop {
            if let Some(header) = self.read.get(1..5) {
                let length = u32::from_be_bytes(header.try_into().expect("four bytes")) as usize;
                if length > MAX_MESSAGE_BYTES {
                    return Err(WireError::Lost(format!(
                        "protocol error: the server announced a message of {length} bytes"
                    )));
                }
            }
            if let Some(message) = Message::parse(&mut self.read)
                .map_err(|e| WireError::Lost(format!("protocol error: {e}")))?
            {
                return Ok(message);
            }
            self.read.reserve(8192);
            if self.stream.read_buf(&mut self.read).await.map_err(lost)? == 0 {
                return Err(WireError::Lost(
                    "connection lost: the server closed the connection".into(),
                ));
            }
        }
    }

    /// Reads to ReadyForQuery; the first error the server sent, if any. Rows are dropped, as
    /// pgbench clears its results.
    async fn finish(&mut self) -> Result<(), WireError> {
        let mut first: Option<WireError> = None;
        loop {
            match self.next().await {
                Ok(Message::ReadyForQuery(_)) => return first.map_or(Ok(()), Err),
                Ok(Message::ErrorResponse(body)) => {
                    first.get_or_insert(server_error(&body));
                }
                // COPY … FROM STDIN waits for data a bench script has none of: refuse it, so
                // the server ends the statement with an error instead of waiting for ever.
                Ok(Message::CopyInResponse(_)) => {
                    frontend::copy_fail("pitstop bench sends no COPY data", &mut self.write)
                        .map_err(lost)?;
                    if self.extended {
                        // The Sync sent with the request is ignored during COPY.
                        frontend::sync(&mut self.write);
                    }
                    self.flush().await?;
                }
                Ok(_) => {}
                // A FATAL error (the server shutting down, the session terminated) and then
                // the end: the session is lost, and the server said why.
                Err(WireError::Lost(why)) => {
                    return Err(WireError::Lost(match first.filter(WireError::is_fatal) {
                        Some(e) => format!("connection lost: {}", e.describe()),
                        None => why,
                    }));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Prepares `text` as the named statement `name` (Parse, Sync).
    pub async fn prepare(&mut self, name: &str, text: &str) -> Result<(), WireError> {
        frontend::parse(name, text, std::iter::empty(), &mut self.write).map_err(lost)?;
        frontend::sync(&mut self.write);
        self.extended = true;
        self.request().await
    }

    /// Sends the buffered request and reads its answer. A write that fails (the server has
    /// closed the session) still reads what the server said before it closed.
    async fn request(&mut self) -> Result<(), WireError> {
        match self.flush().await {
            Ok(()) => self.finish().await,
            Err(written) => match self.finish().await {
                Err(WireError::Lost(why)) if why.contains("SQLSTATE") => Err(WireError::Lost(why)),
                _ => Err(written),
            },
        }
    }

    /// Runs the prepared statement `name` with these text parameters (Bind, Execute, Sync).
    pub async fn execute<'p>(
        &mut self,
        name: &str,
        params: impl Iterator<Item = &'p str>,
    ) -> Result<(), WireError> {
        encode_execute(name, params, &mut self.write)?;
        self.extended = true;
        self.request().await
    }

    /// Runs `text` as a simple query.
    pub async fn query(&mut self, text: &str) -> Result<(), WireError> {
        frontend::query(text, &mut self.write).map_err(lost)?;
        self.extended = false;
        self.request().await
    }

    /// Ends the session politely (Terminate), so the server logs no lost client.
    pub async fn close(mut self) {
        frontend::terminate(&mut self.write);
        let _ = self.flush().await;
    }
}

/// Bind (text parameters, text results), Execute (all rows), Sync.
fn encode_execute<'p>(
    name: &str,
    params: impl Iterator<Item = &'p str>,
    buf: &mut BytesMut,
) -> Result<(), WireError> {
    let bound = frontend::bind(
        "",
        name,
        std::iter::empty(),
        params,
        |p, buf| {
            buf.extend_from_slice(p.as_bytes());
            Ok(IsNull::No)
        },
        std::iter::empty(),
        buf,
    );
    if bound.is_err() {
        return Err(WireError::Lost(
            "a statement's parameters do not fit in a Bind message".into(),
        ));
    }
    frontend::execute("", 0, buf).map_err(lost)?;
    frontend::sync(buf);
    Ok(())
}

/// The session for the plaintext path: the client's socket, woken by readability only.
pub type Session = Wire<ReadWoken>;

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    /// A backend message: tag, length, body.
    fn message(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn error(severity: &str, code: &str, text: &str) -> Vec<u8> {
        let mut body = Vec::new();
        for (t, v) in [(b'S', severity), (b'V', severity), (b'C', code), (b'M', text)] {
            body.push(t);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        message(b'E', &body)
    }

    fn ready() -> Vec<u8> {
        message(b'Z', b"I")
    }

    fn auth(code: i32, rest: &[u8]) -> Vec<u8> {
        let mut body = code.to_be_bytes().to_vec();
        body.extend_from_slice(rest);
        message(b'R', &body)
    }

    /// Frontend messages as (tag, body), the startup message as tag 0.
    async fn read_frontend(server: &mut DuplexStream, startup: bool) -> (u8, Vec<u8>) {
        let tag = if startup { 0 } else { server.read_u8().await.unwrap() };
        let len = server.read_i32().await.unwrap() as usize;
        let mut body = vec![0; len - 4];
        server.read_exact(&mut body).await.unwrap();
        (tag, body)
    }

    fn startup<'a>(password: Option<&'a [u8]>) -> Startup<'a> {
        Startup {
            user: "alice",
            database: Some("app"),
            application_name: Some("pitstop-bench"),
            options: Some("-c lock_timeout=0"),
            password,
        }
    }

    #[tokio::test]
    async fn startup_sends_the_parameters_and_md5_answers_with_the_salted_hash() {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let server_side = async move {
            let (_, body) = read_frontend(&mut server, true).await;
            let text = String::from_utf8_lossy(&body[4..]).to_string();
            let pairs: Vec<&str> = text.split('\0').filter(|s| !s.is_empty()).collect();
            assert_eq!(
                pairs,
                [
                    "client_encoding",
                    "UTF8",
                    "user",
                    "alice",
                    "database",
                    "app",
                    "options",
                    "-c lock_timeout=0",
                    "application_name",
                    "pitstop-bench"
                ]
            );
            server.write_all(&auth(5, &[1, 2, 3, 4])).await.unwrap();
            let (tag, body) = read_frontend(&mut server, false).await;
            assert_eq!(tag, b'p');
            let expected = md5_hash(b"alice", b"secret", [1, 2, 3, 4]);
            assert_eq!(&body[..body.len() - 1], expected.as_bytes());
            let mut rest = auth(0, &[]);
            rest.extend(message(b'S', b"server_version\x0015.0\x00"));
            rest.extend(message(b'K', &[0, 0, 0, 7, 0, 0, 0, 9]));
            rest.extend(ready());
            server.write_all(&rest).await.unwrap();
            server
        };
        let start = startup(Some(b"secret"));
        let (wire, _server) = tokio::join!(Wire::start(client, &start), server_side);
        assert!(wire.is_ok());
    }

    #[tokio::test]
    async fn a_password_request_without_a_password_and_an_auth_failure_are_clear() {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let server_side = async move {
            read_frontend(&mut server, true).await;
            server.write_all(&auth(3, &[])).await.unwrap();
            server
        };
        let start = startup(None);
        let (wire, _server) = tokio::join!(Wire::start(client, &start), server_side);
        assert!(matches!(wire, Err(WireError::Lost(why)) if why.contains("asks for a password")));

        let (client, mut server) = tokio::io::duplex(1 << 16);
        let server_side = async move {
            read_frontend(&mut server, true).await;
            server
                .write_all(&error(
                    "FATAL",
                    "28P01",
                    "password authentication failed for user \"alice\"",
                ))
                .await
                .unwrap();
            server
        };
        let start = startup(Some(b"x"));
        let (wire, _server) = tokio::join!(Wire::start(client, &start), server_side);
        let Err(e) = wire else { panic!("started") };
        assert_eq!(
            e.describe(),
            "password authentication failed for user \"alice\" (SQLSTATE 28P01)"
        );
    }

    /// Bind names the statement, carries each parameter as text and asks for text results;
    /// Execute asks for every row; Sync ends the request.
    #[test]
    fn execute_is_bind_execute_sync_with_text_parameters() {
        let mut buf = BytesMut::new();
        encode_execute("s0_5", ["-42", "", "0.5"].into_iter(), &mut buf).unwrap();
        let mut expected = BytesMut::new();
        expected.put_u8(b'B');
        let mut body = BytesMut::new();
        body.extend_from_slice(b"\0s0_5\0");
        body.put_i16(0); // no format codes: all text
        body.put_i16(3);
        for p in ["-42", "", "0.5"] {
            body.put_i32(p.len() as i32);
            body.extend_from_slice(p.as_bytes());
        }
        body.put_i16(0); // results in text
        expected.put_i32(body.len() as i32 + 4);
        expected.extend_from_slice(&body);
        expected.extend_from_slice(&[b'E', 0, 0, 0, 9, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[b'S', 0, 0, 0, 4]);
        assert_eq!(buf, expected);
    }

    /// The first error of a request is its outcome, read to ReadyForQuery so the session goes
    /// on; rows and notices are dropped; a FATAL error then the end is a lost session that
    /// says why.
    #[tokio::test]
    async fn errors_are_read_to_ready_for_query_and_a_fatal_end_is_lost() {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let mut wire =
            Wire { stream: client, read: BytesMut::new(), write: BytesMut::new(), extended: false };
        let mut answer = message(b'T', &[0, 0]);
        answer.extend(message(b'D', &[0, 0]));
        answer.extend(message(b'N', b"\0"));
        answer.extend(error("ERROR", "22012", "division by zero"));
        answer.extend(error("ERROR", "25P02", "current transaction is aborted"));
        answer.extend(ready());
        // Then a good one, in pieces smaller than a message.
        answer.extend(message(b'C', b"SELECT 1\0"));
        answer.extend(ready());
        let (first, rest) = answer.split_at(answer.len() - 9);
        server.write_all(first).await.unwrap();
        let e = wire.query("SELECT 1/0").await.unwrap_err();
        assert!(
            matches!(&e, WireError::Server { code, severity, .. } if code == "22012" && severity == "ERROR"),
            "{e:?}"
        );
        let (tag, body) = read_frontend(&mut server, false).await;
        assert_eq!((tag, &body[..]), (b'Q', &b"SELECT 1/0\0"[..]));
        let writer = async {
            for byte in rest {
                server.write_all(&[*byte]).await.unwrap();
            }
            server
        };
        let (ok, mut server) = tokio::join!(wire.query("SELECT 1"), writer);
        assert_eq!(ok, Ok(()));

        server
            .write_all(&error(
                "FATAL",
                "57P01",
                "terminating connection due to administrator command",
            ))
            .await
            .unwrap();
        drop(server);
        let e = wire.execute("s0_1", std::iter::empty()).await.unwrap_err();
        assert_eq!(e, WireError::Lost("connection lost: terminating connection due to administrator command (SQLSTATE 57P01)".into()));
    }

    /// A server that starts SCRAM and then lets us in without its signature is refused (it
    /// proved nothing: anyone answering on the address could do it).
    #[tokio::test]
    async fn scram_without_the_servers_final_message_is_refused() {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let server_side = async move {
            read_frontend(&mut server, true).await;
            server.write_all(&auth(10, b"SCRAM-SHA-256\0\0")).await.unwrap();
            let (tag, _) = read_frontend(&mut server, false).await;
            assert_eq!(tag, b'p');
            server.write_all(&auth(0, &[])).await.unwrap();
            server
        };
        let start = startup(Some(b"secret"));
        let (wire, _server) = tokio::join!(Wire::start(client, &start), server_side);
        assert!(
            matches!(wire, Err(WireError::Lost(why)) if why.contains("without its final message"))
        );
    }

    /// A length field of 4 GB is an error, not an allocation.
    #[tokio::test]
    async fn an_absurd_message_length_is_a_protocol_error() {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let mut wire =
            Wire { stream: client, read: BytesMut::new(), write: BytesMut::new(), extended: false };
        server.write_all(&[b'D', 0xff, 0xff, 0xff, 0xff]).await.unwrap();
        let e = wire.query("SELECT 1").await.unwrap_err();
        assert!(matches!(&e, WireError::Lost(why) if why.contains("4294967295 bytes")), "{e:?}");
        assert!(wire.read.capacity() < 1 << 20);
    }

    /// COPY … FROM STDIN is refused with CopyFail (and, in the extended protocol, a Sync the
    /// server waits for after it): the server's error ends the statement, nothing waits.
    #[tokio::test]
    async fn copy_from_stdin_is_refused_instead_of_waiting() {
        for extended in [false, true] {
            let (client, mut server) = tokio::io::duplex(1 << 16);
            let mut wire = Wire {
                stream: client,
                read: BytesMut::new(),
                write: BytesMut::new(),
                extended: false,
            };
            let server_side = async move {
                read_frontend(&mut server, false).await;
                if extended {
                    read_frontend(&mut server, false).await;
                    read_frontend(&mut server, false).await;
                }
                server.write_all(&message(b'G', &[0, 0, 0])).await.unwrap();
                let (tag, body) = read_frontend(&mut server, false).await;
                assert_eq!(tag, b'f');
                assert!(String::from_utf8_lossy(&body).contains("no COPY data"));
                if extended {
                    assert_eq!(read_frontend(&mut server, false).await.0, b'S');
                }
                let mut answer = error(
                    "ERROR",
                    "57014",
                    "COPY from stdin failed: pitstop bench sends no COPY data",
                );
                answer.extend(ready());
                server.write_all(&answer).await.unwrap();
                server
            };
            let request = async {
                if extended {
                    wire.execute("s0_1", std::iter::empty()).await
                } else {
                    wire.query("COPY t FROM STDIN").await
                }
            };
            let (outcome, _server) = tokio::join!(request, server_side);
            assert!(
                matches!(&outcome, Err(WireError::Server { code, .. }) if code == "57014"),
                "{outcome:?}"
            );
        }
    }
}
