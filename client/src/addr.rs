//! Server addresses: a Unix socket path or `HOST:PORT`, or a comma-separated list of them
//! (tried in order). Parsing only; connecting is the `connection` module's job.

use crate::error::Error;
use std::fmt;
use std::path::PathBuf;

/// One place a server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix domain socket.
    Unix(PathBuf),
    /// A TCP address; `host` is a name, an IPv4 address or an IPv6 address without brackets.
    Tcp { host: String, port: u16 },
}

impl Endpoint {
    /// Whether this is a Unix socket (the only transport for connection-bound sessions).
    pub fn is_unix(&self) -> bool {
        matches!(self, Endpoint::Unix(_))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "{}", path.display()),
            Endpoint::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Endpoint::Tcp { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// Parses one address: a Unix socket path if it contains `/` or has no `:`, else
/// `HOST:PORT` (an IPv6 host in brackets: `[::1]:7000`).
pub fn parse_endpoint(addr: &str) -> Result<Endpoint, Error> {
    let invalid = |reason: &str| Error::InvalidAddress { addr: addr.to_owned(), reason: reason.to_owned() };
    let addr_trimmed = addr.trim();
    if addr_trimmed.is_empty() {
        return Err(invalid("empty address"));
    }
    if addr_trimmed.contains('/') || !addr_trimmed.contains(':') {
        return Ok(Endpoint::Unix(PathBuf::from(addr_trimmed)));
    }
    let Some((host, port)) = addr_trimmed.rsplit_once(':') else {
        return Err(invalid("expected HOST:PORT"));
    };
    let host = match host.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']').ok_or_else(|| invalid("unclosed '[' in IPv6 address"))?,
        None if host.contains(':') => {
            return Err(invalid("an IPv6 address needs brackets: [ADDR]:PORT"));
        }
        None => host,
    };
    if host.is_empty() {
        return Err(invalid("missing host before ':'"));
    }
    let port: u16 = port.parse().map_err(|_| invalid("the port must be a number from 1 to 65535"))?;
    if port == 0 {
        return Err(invalid("the port must be a number from 1 to 65535"));
    }
    Ok(Endpoint::Tcp { host: host.to_owned(), port })
}

/// Parses a comma-separated list of addresses, keeping their order.
pub fn parse_endpoints(addrs: &str) -> Result<Vec<Endpoint>, Error> {
    let endpoints =
        addrs.split(',').filter(|a| !a.trim().is_empty()).map(parse_endpoint).collect::<Result<Vec<_>, _>>()?;
    if endpoints.is_empty() {
        return Err(Error::InvalidAddress { addr: addrs.to_owned(), reason: "no address given".to_owned() });
    }
    Ok(endpoints)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Endpoint {
        Endpoint::Tcp { host: host.into(), port }
    }

    #[test]
    fn paths_and_names_without_colon_are_unix_sockets() {
        assert_eq!(parse_endpoint("/run/baton/baton.sock").unwrap(), Endpoint::Unix("/run/baton/baton.sock".into()));
        assert_eq!(parse_endpoint("baton.sock").unwrap(), Endpoint::Unix("baton.sock".into()));
        assert_eq!(parse_endpoint("./odd:name.sock").unwrap(), Endpoint::Unix("./odd:name.sock".into()));
    }

    #[test]
    fn host_port_is_tcp() {
        assert_eq!(parse_endpoint("localhost:7000").unwrap(), tcp("localhost", 7000));
        assert_eq!(parse_endpoint("10.0.0.1:1").unwrap(), tcp("10.0.0.1", 1));
        assert_eq!(parse_endpoint("[::1]:7000").unwrap(), tcp("::1", 7000));
        assert_eq!(tcp("::1", 7000).to_string(), "[::1]:7000");
    }

    #[test]
    fn bad_tcp_addresses_are_refused() {
        for bad in ["host:", "host:0", "host:70000", ":7000", "::1:7000", "[::1:7000", ""] {
            assert!(matches!(parse_endpoint(bad), Err(Error::InvalidAddress { .. })), "{bad:?}");
        }
    }

    #[test]
    fn lists_keep_their_order() {
        assert_eq!(
            parse_endpoints("a:1, /tmp/s ,b:2,").unwrap(),
            vec![tcp("a", 1), Endpoint::Unix("/tmp/s".into()), tcp("b", 2)]
        );
        assert!(parse_endpoints(" , ").is_err());
    }
}
