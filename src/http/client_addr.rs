//! The client's address: the connection's peer, or, when the peer is a trusted proxy
//! (`security.trusted_proxies`, CIDR blocks), the address that proxy says it
//! forwarded for (`Forwarded: for=`, RFC 7239, else `X-Forwarded-For`).
//!
//! The forwarding headers are read from the right (the hop nearest the gateway):
//! each hop is believed only while the address before it is a trusted proxy, so a
//! client cannot choose its address by sending the header itself. A hop that is not
//! an address (`unknown`, an obfuscated name) stops the walk at the proxy.

use std::net::IpAddr;

use axum::http::{header, HeaderMap};
use ipnet::IpNet;

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses CIDR blocks (`10.0.0.0/8`, `fd00::/8`) or single addresses.
    pub fn parse(list: &[String]) -> anyhow::Result<Self> {
        list.iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "security.trusted_proxies: {s:?} is not a CIDR block (10.0.0.0/8) or an address"
                        )
                    })
            })
            .collect::<anyhow::Result<Vec<_>>>()
            .map(TrustedProxies)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a connection from `peer` with these headers.
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops = forwarded_hops(headers);
        let mut current = peer;
        for hop in hops.iter().rev() {
            if !self.trusts(current) {
                break;
            }
            match hop {
                Some(ip) => current = canonical(*ip),
                None => break,
            }
        }
        current
    }
}

/// An IPv4 address mapped into IPv6 (`::ffff:1.2.3.4`) as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The hops the forwarding headers name, nearest the client first; `None` for a hop
/// that is not an address. `Forwarded` wins over `X-Forwarded-For` when present.
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<&str> = headers
        .get_all(header::FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, v)| node_address(v))
            })
            .collect();
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(node_address)
        .collect()
}

/// An address from a `for=` node or an `X-Forwarded-For` entry: `1.2.3.4`,
/// `1.2.3.4:80`, `"[2001:db8::1]:80"`, `2001:db8::1`.
fn node_address(v: &str) -> Option<IpAddr> {
    let v = v.trim().trim_matches('"');
    if let Ok(ip) = v.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = v.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn headers_count_only_from_a_trusted_proxy() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8".into(), "192.0.2.7".into()]).unwrap();
        let xff = headers(&[("x-forwarded-for", "203.0.113.9")]);
        // From a trusted proxy: the address it forwarded for.
        assert_eq!(
            trusted.client_address(ip("10.1.2.3"), &xff),
            ip("203.0.113.9")
        );
        assert_eq!(
            trusted.client_address(ip("192.0.2.7"), &xff),
            ip("203.0.113.9")
        );
        // From anyone else the header is the client's own claim: the socket address.
        assert_eq!(
            trusted.client_address(ip("198.51.100.1"), &xff),
            ip("198.51.100.1")
        );
        // No trusted proxies configured: always the socket address.
        assert_eq!(
            TrustedProxies::default().client_address(ip("10.1.2.3"), &xff),
            ip("10.1.2.3")
        );
        // No header from a trusted proxy: the proxy.
        assert_eq!(
            trusted.client_address(ip("10.1.2.3"), &HeaderMap::new()),
            ip("10.1.2.3")
        );
    }

    #[test]
    fn the_walk_stops_at_the_first_untrusted_hop_from_the_right() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8".into()]).unwrap();
        // The client wrote a fake first entry; the proxies appended the rest.
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.0.0.2")]);
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), &h),
            ip("203.0.113.9")
        );
        // Several header lines are one list.
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "203.0.113.9:4711"),
        ]);
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), &h),
            ip("203.0.113.9")
        );
        // An entry that is not an address: the proxy's own address.
        let h = headers(&[("x-forwarded-for", "unknown")]);
        assert_eq!(trusted.client_address(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn forwarded_is_read_before_x_forwarded_for() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8".into(), "::1/128".into()]).unwrap();
        let h = headers(&[
            ("forwarded", r#"for=192.0.2.60;proto=http;by=203.0.113.43"#),
            ("forwarded", r#"For="[2001:db8:cafe::17]:4711""#),
            ("x-forwarded-for", "198.51.100.1"),
        ]);
        assert_eq!(
            trusted.client_address(ip("::1"), &h),
            ip("2001:db8:cafe::17")
        );
        let h = headers(&[("forwarded", "for=_hidden, for=10.0.0.5")]);
        assert_eq!(trusted.client_address(ip("10.0.0.1"), &h), ip("10.0.0.5"));
        // An IPv4 peer seen as IPv6-mapped is trusted as IPv4.
        let h = headers(&[("forwarded", "for=192.0.2.60:80")]);
        assert_eq!(
            trusted.client_address(ip("::ffff:10.0.0.1"), &h),
            ip("192.0.2.60")
        );
    }

    #[test]
    fn bad_blocks_are_refused() {
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(TrustedProxies::parse(&["proxy.example".into()]).is_err());
    }
}
