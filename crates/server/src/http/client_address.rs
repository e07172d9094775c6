//! Who is on the other end: the connection's address, or, when that is a trusted proxy, the client it
//! names in `X-Forwarded-For`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use barrack_core::accounts::login_throttle::ClientIp;
use barrack_core::config::parse_ip_net;

/// The client's address, as the rate limiter and the log-in throttle see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// From the checked configuration (entries that do not parse were refused when it was loaded).
    pub fn new(entries: &[String]) -> TrustedProxies {
        TrustedProxies(entries.iter().filter_map(|e| parse_ip_net(e)).collect())
    }

    fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.0
            .iter()
            .any(|&(net, prefix)| contains(canonical(net), prefix, address))
    }

    /// The client of a request that arrived from `peer`: walking `X-Forwarded-For` from the right (the
    /// entry the nearest proxy wrote), the first address that is not a trusted proxy.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        for value in headers.get_all("x-forwarded-for").iter().rev() {
            let Ok(text) = value.to_str() else {
                return client;
            };
            for entry in text.rsplit(',') {
                let Ok(address) = entry.trim().parse::<IpAddr>() else {
                    return client;
                };
                client = address;
                if !self.trusts(address) {
                    return client;
                }
            }
        }
        client
    }
}

fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn contains(net: IpAddr, prefix: u8, address: IpAddr) -> bool {
    match (net, address) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// The connection's peer address (unspecified when served without connection info, as in unit tests).
pub fn peer(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Noted by the middleware in front of every route (`ClientIp`, which the dashboard reads too).
        Ok(ClientAddress(
            parts
                .extensions
                .get::<ClientIp>()
                .map_or_else(|| peer(parts), |noted| noted.0),
        ))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies = TrustedProxies::new(&["10.0.0.0/8".into(), "192.0.2.1".into()]);
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.1.1.1, 203.0.113.7, 10.1.2.3"),
        );
        assert_eq!(proxies.client(ip("10.9.9.9"), &headers), ip("203.0.113.7"));
        assert_eq!(
            proxies.client(ip("::ffff:192.0.2.1"), &headers),
            ip("203.0.113.7")
        );
        assert_eq!(
            proxies.client(ip("198.51.100.1"), &headers),
            ip("198.51.100.1"),
            "an untrusted peer's header is ignored"
        );
        headers.insert("x-forwarded-for", HeaderValue::from_static("garbage"));
        assert_eq!(proxies.client(ip("10.9.9.9"), &headers), ip("10.9.9.9"));
        assert_eq!(
            TrustedProxies::default().client(ip("10.9.9.9"), &HeaderMap::new()),
            ip("10.9.9.9")
        );
    }
}
