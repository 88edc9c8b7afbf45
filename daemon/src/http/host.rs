//! Defence against DNS rebinding. A web page can make a browser on this host send requests
//! to the daemon under a name the page's owner controls (first resolved to their server,
//! then to 127.0.0.1), and read the answers as same-origin. Such requests carry the
//! attacker's name in `Host`, so only these names are served; anything else gets
//! 421 Misdirected Request:
//!
//! - the listening address, `IP:port` as the daemon bound it (any IP literal when it
//!   listens on every address, 0.0.0.0 or [::]: an IP in the URL cannot be rebound);
//! - `localhost:port` when it listens on loopback (or every address);
//! - the entries of `http.allowed_hosts`: `name` (any port) or `name:port`.
//!
//! A port, when the Host header gives one, must be the listening port for the first two.
//! A request without a Host header (HTTP/1.0 health checks) is served: a browser always
//! sends one, so such a request is not a rebinding request.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// `host[:port]` as a Host header or an `http.allowed_hosts` entry writes it; the host is
/// kept in lower case, without a trailing dot, IPv6 addresses in brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    host: String,
    port: Option<u16>,
}

impl Authority {
    pub fn parse(text: &str) -> Result<Authority, String> {
        let text = text.trim();
        let shape = || {
            format!("{text:?} is not a host name or host:port such as \"pitstop.example.com\" or \"pitstop.example.com:9247\"")
        };
        let port = |p: &str| p.parse::<u16>().map_err(|_| shape());
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (ip, after) = rest.split_once(']').ok_or_else(shape)?;
            let ip: Ipv6Addr = ip.parse().map_err(|_| shape())?;
            let port = match after {
                "" => None,
                p => Some(port(p.strip_prefix(':').ok_or_else(shape)?)?),
            };
            (format!("[{ip}]"), port)
        } else {
            let (host, port) = match text.rsplit_once(':') {
                Some((host, p)) => (host, Some(port(p)?)),
                None => (text, None),
            };
            let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
            let label_ok = |l: &str| {
                (1..=63).contains(&l.len())
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            };
            if host.len() > 253 || !host.split('.').all(label_ok) {
                return Err(shape());
            }
            (host, port)
        };
        Ok(Authority { host, port })
    }

    fn ip(&self) -> Option<IpAddr> {
        self.host.trim_start_matches('[').trim_end_matches(']').parse().ok()
    }
}

impl std::fmt::Display for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// The Host headers this daemon answers to.
#[derive(Debug)]
pub struct Hosts {
    listen: SocketAddr,
    allowed: Vec<Authority>,
}

impl Hosts {
    /// `listen`: the address actually bound (its real port when the configuration said 0).
    pub fn new(listen: SocketAddr, allowed: Vec<Authority>) -> Hosts {
        Hosts { listen, allowed }
    }

    /// Whether a request whose Host header is `host` (None: no Host header) is served.
    pub fn allows(&self, host: Option<&str>) -> bool {
        let Some(host) = host else { return true };
        let Ok(asked) = Authority::parse(host) else { return false };
        let ip = self.listen.ip();
        let ours = match asked.ip() {
            Some(asked_ip) => asked_ip == ip || ip.is_unspecified(),
            None => asked.host == "localhost" && (ip.is_loopback() || ip.is_unspecified()),
        };
        let port_ok = asked.port.is_none_or(|p| p == self.listen.port());
        (ours && port_ok)
            || self.allowed.iter().any(|a| {
                a.host == asked.host && a.port.is_none_or(|p| p == asked.port.unwrap_or(80))
            })
    }
}

/// Middleware: serves the request only if its Host header (and the authority of an
/// absolute-form request target, if any) is one of ours; several Host headers are refused.
pub async fn check(State(hosts): State<Arc<Hosts>>, request: Request, next: Next) -> Response {
    let mut values = request.headers().get_all(header::HOST).iter();
    let (first, second) = (values.next(), values.next());
    let header_ok = match (first, second) {
        (None, _) => true,
        (Some(value), None) => value.to_str().is_ok_and(|h| hosts.allows(Some(h))),
        (Some(_), Some(_)) => false,
    };
    let target_ok = request.uri().authority().is_none_or(|a| hosts.allows(Some(a.as_str())));
    if header_ok && target_ok {
        return next.run(request).await;
    }
    tracing::debug!(
        "http: {} {} refused: Host {:?} is not served here",
        request.method(),
        request.uri().path(),
        first
    );
    let body = "421 Misdirected Request: this pitstop daemon does not answer to that Host name \
                (add it to http.allowed_hosts if it is yours)\n";
    (StatusCode::MISDIRECTED_REQUEST, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(listen: &str, allowed: &[&str]) -> Hosts {
        Hosts::new(
            listen.parse().unwrap(),
            allowed.iter().map(|a| Authority::parse(a).unwrap()).collect(),
        )
    }

    /// Asserts which Host headers `h` serves and which it refuses.
    fn check(h: &Hosts, served: &[&str], refused: &[&str]) {
        for host in served {
            assert!(h.allows(Some(host)), "{host:?} refused");
        }
        for host in refused {
            assert!(!h.allows(Some(host)), "{host:?} served");
        }
    }

    #[test]
    fn the_listening_address_and_localhost_are_served() {
        let h = hosts("127.0.0.1:9247", &[]);
        assert!(h.allows(None), "no Host header refused");
        check(
            &h,
            &[
                "127.0.0.1:9247",
                "127.0.0.1",
                "localhost:9247",
                "LOCALHOST:9247",
                "localhost.",
                "localhost",
            ],
            &[
                "evil.example:9247",
                "evil.example",
                "127.0.0.1:80",
                "localhost:9999",
                "127.0.0.2:9247",
                "[::1]:9247",
                "127.0.0.1.evil.example:9247",
                "localhost.evil.example:9247",
                "",
                ":9247",
                "a b:9247",
                "127.0.0.1:9247:1",
            ],
        );
        check(
            &hosts("[::1]:9247", &[]),
            &["[::1]:9247", "[0:0:0:0:0:0:0:1]:9247", "localhost:9247"],
            &["127.0.0.1:9247", "[::1"],
        );
    }

    #[test]
    fn every_address_means_any_ip_literal_but_no_name() {
        check(
            &hosts("0.0.0.0:9247", &[]),
            &["10.1.2.3:9247", "192.168.0.7", "localhost:9247"],
            &["10.1.2.3:9999", "db1.internal:9247"],
        );
        // Bound on one address that is not loopback: localhost does not reach it.
        check(&hosts("10.1.2.3:9247", &[]), &[], &["localhost:9247"]);
    }

    #[test]
    fn configured_names_with_or_without_a_port() {
        check(
            &hosts("127.0.0.1:9247", &["pitstop.example.com", "Metrics.Example.com.:8443"]),
            &[
                "pitstop.example.com",
                "PITSTOP.example.com:443",
                "pitstop.example.com.:9247",
                "metrics.example.com:8443",
            ],
            &[
                "metrics.example.com:9247",
                "metrics.example.com",
                "example.com",
                "x.pitstop.example.com",
            ],
        );
    }

    #[test]
    fn bad_allowed_hosts_entries_are_errors() {
        for bad in ["", "a b", "http://x", "x:99999", "x:port", "[::1", "-.", "a..b", "x/y"] {
            assert!(Authority::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            Authority::parse("Pitstop.Example.com.:9247").unwrap().to_string(),
            "pitstop.example.com:9247"
        );
        assert_eq!(Authority::parse("[::1]").unwrap().to_string(), "[::1]");
    }
}
