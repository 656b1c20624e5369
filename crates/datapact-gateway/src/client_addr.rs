//! The client's address: the TCP peer, or what a trusted proxy says it forwarded.
//!
//! `Forwarded` (RFC 7239) and `X-Forwarded-For` are believed only when the peer is one of the
//! configured trusted proxies, and then read from the right, skipping hops that are themselves
//! trusted: the first untrusted hop is the client. Anyone else could forge them.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

/// The address a request is attributed to, in request extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(pub Vec<IpNet>);

impl TrustedProxies {
    /// Parses `10.0.0.0/8,192.168.1.7` (a bare address is a single-host network).
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut networks = Vec::new();
        for item in list.split(',').map(str::trim).filter(|item| !item.is_empty()) {
            let network = item
                .parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{item:?} is not an IP address or CIDR network such as 10.0.0.0/8"))?;
            networks.push(network);
        }
        Ok(TrustedProxies(networks))
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(&address))
    }

    /// The client for a request that arrived from `peer` with these headers.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops = forwarded_hops(headers);
        for hop in hops.iter().rev() {
            if !self.trusts(*hop) {
                return *hop;
            }
        }
        hops.first().copied().unwrap_or(peer)
    }
}

/// Forwarding hops, client first. `Forwarded` wins over `X-Forwarded-For` when both are present.
fn forwarded_hops(headers: &HeaderMap) -> Vec<IpAddr> {
    let forwarded: Vec<IpAddr> = headers
        .get_all("forwarded")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                name.eq_ignore_ascii_case("for").then(|| parse_node(value))?
            })
        })
        .collect();
    if !forwarded.is_empty() {
        return forwarded;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(parse_node)
        .collect()
}

/// A node as `Forwarded` writes it: `192.0.2.1`, `"192.0.2.1:8080"`, `"[2001:db8::1]:80"`.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Ok(address) = node.parse::<IpAddr>() {
        return Some(address);
    }
    if let Ok(socket) = node.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    node.strip_prefix('[').and_then(|rest| rest.split(']').next()).and_then(|ip| ip.parse().ok())
}

/// Middleware: records the [`ClientAddr`] of each request.
pub async fn attribute_client(
    axum::extract::State(proxies): axum::extract::State<std::sync::Arc<TrustedProxies>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let client = proxies.client(peer.ip(), request.headers());
    request.extensions_mut().insert(ClientAddr(client));
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn untrusted_peers_cannot_forge() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(proxies.client(peer, &headers(&[("x-forwarded-for", "1.2.3.4")])), peer);
    }

    #[test]
    fn trusted_chain_is_read_from_the_right() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.168.1.7").unwrap();
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let forged_then_real = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.4, 192.168.1.7")]);
        assert_eq!(proxies.client(peer, &forged_then_real), "198.51.100.4".parse::<IpAddr>().unwrap());
        let forwarded = headers(&[("forwarded", "for=\"[2001:db8::5]:4711\";proto=https, for=10.1.1.1")]);
        assert_eq!(proxies.client(peer, &forwarded), "2001:db8::5".parse::<IpAddr>().unwrap());
        assert_eq!(proxies.client(peer, &HeaderMap::new()), peer);
    }

    #[test]
    fn bad_lists_are_refused() {
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.local").is_err());
    }
}
