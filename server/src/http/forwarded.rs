//! Who is asking, and at which address they reached the gateway: the configured public
//! URL, else the connection, or `X-Forwarded-For`/`-Proto`/`-Host` when (and only when)
//! the connection comes from a configured reverse proxy. Anyone else could forge those
//! headers. The host ends up in shell commands restore plans give (`restore_command`),
//! so only a well-formed one is believed.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;
use crate::settings::{Network, valid_host};

/// The reverse proxies whose forwarded headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<Network>);

impl TrustedProxies {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }
}

/// Where a request came from and how the client addressed the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The client: the peer, or past trusted proxies the nearest untrusted address.
    pub client: Option<IpAddr>,
    /// `http` or `https`, as the client used.
    pub scheme: String,
    /// The host (and port) the client used, when known.
    pub host: Option<String>,
}

impl Origin {
    /// Works out the origin of a request from `peer` with `headers`.
    pub fn of(
        peer: Option<IpAddr>,
        headers: &HeaderMap,
        tls: bool,
        proxies: &TrustedProxies,
    ) -> Self {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        // Each proxy appends its own value: the last one is the nearest proxy's.
        let last = |v: String| v.rsplit(',').next().map(|v| v.trim().to_owned());
        let mut origin = Origin {
            client: peer,
            scheme: if tls { "https" } else { "http" }.to_owned(),
            host: header("host").filter(|h| valid_host(h)),
        };
        let Some(peer) = peer.filter(|p| proxies.trusts(*p)) else {
            return origin;
        };
        // Right to left: each hop appended the address it saw; the first one not a
        // trusted proxy is the client.
        if let Some(chain) = header("x-forwarded-for") {
            let hops: Vec<IpAddr> = chain
                .split(',')
                .filter_map(|h| h.trim().parse().ok())
                .collect();
            origin.client = Some(
                hops.iter()
                    .rev()
                    .copied()
                    .find(|ip| !proxies.trusts(*ip))
                    .or(hops.first().copied())
                    .unwrap_or(peer),
            );
        }
        if let Some(proto) = header("x-forwarded-proto")
            .and_then(last)
            .map(|p| p.to_ascii_lowercase())
            .filter(|p| p == "http" || p == "https")
        {
            origin.scheme = proto;
        }
        if let Some(host) = header("x-forwarded-host").and_then(last) {
            origin.host = Some(host).filter(|h| valid_host(h));
        }
        origin
    }

    /// This origin as a browser's `Origin` header names it.
    pub fn web_origin(&self) -> Option<String> {
        Some(format!("{}://{}", self.scheme, self.host.as_deref()?))
    }
}

/// Puts the request's [`Origin`] in its extensions, for handlers and the access log.
pub async fn origin(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let mut origin = Origin::of(peer, request.headers(), state.tls, &state.trusted_proxies);
    if let Some(public) = &state.services.settings.public_url {
        origin.scheme.clone_from(&public.scheme);
        origin.host = Some(public.host.clone());
    }
    request.extensions_mut().insert(origin);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::PublicUrl;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_parse_and_match() {
        let net: Network = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains(ip("10.1.2.3")) && !net.contains(ip("11.0.0.1")));
        assert!(net.contains(ip("::ffff:10.9.9.9")), "IPv4-mapped IPv6");
        let one: Network = "::1".parse().unwrap();
        assert!(one.contains(ip("::1")) && !one.contains(ip("::2")));
        let all: Network = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x"] {
            assert!(bad.parse::<Network>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let proxies = TrustedProxies(vec!["10.0.0.0/8".parse().unwrap()]);
        let forwarded = headers(&[
            ("host", "10.0.0.5:8432"),
            ("x-forwarded-for", "198.51.100.7, 10.0.0.9"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "backup.example.com"),
        ]);
        let via_proxy = Origin::of(Some(ip("10.0.0.2")), &forwarded, false, &proxies);
        assert_eq!(via_proxy.client, Some(ip("198.51.100.7")));
        assert_eq!(via_proxy.scheme, "https");
        assert_eq!(via_proxy.host.as_deref(), Some("backup.example.com"));

        // The same headers from anyone else are ignored.
        let forged = Origin::of(Some(ip("203.0.113.1")), &forwarded, false, &proxies);
        assert_eq!(forged.client, Some(ip("203.0.113.1")));
        assert_eq!(forged.scheme, "http");
        assert_eq!(forged.host.as_deref(), Some("10.0.0.5:8432"));

        // A client's own values come first: the proxy's, last, count.
        let chained = headers(&[
            ("x-forwarded-proto", "http, https"),
            ("x-forwarded-host", "evil.example, backup.example.com"),
        ]);
        let o = Origin::of(Some(ip("10.0.0.2")), &chained, false, &proxies);
        assert_eq!(o.scheme, "https");
        assert_eq!(o.host.as_deref(), Some("backup.example.com"));

        // A client that prepends its own entry cannot hide behind it.
        let spoof = headers(&[("x-forwarded-for", "1.2.3.4, 198.51.100.7")]);
        let o = Origin::of(Some(ip("10.0.0.2")), &spoof, true, &proxies);
        assert_eq!(o.client, Some(ip("198.51.100.7")));
        assert_eq!(o.scheme, "https", "TLS served by the gateway itself");
    }

    #[test]
    fn only_well_formed_hosts_are_believed() {
        for good in [
            "backup.example.com",
            "backup.example.com:8432",
            "10.0.0.5:8432",
            "[::1]:8432",
            "[2001:db8::1]",
            "walgate_gateway",
        ] {
            assert!(valid_host(good), "{good}");
        }
        for bad in [
            "x;touch${IFS}pwned;#",
            "a b",
            "host:0",
            "host:99999",
            "host:",
            "[::1",
            "[nope]:1",
            "a..b",
            "$(id)",
            "",
        ] {
            assert!(!valid_host(bad), "{bad}");
        }
        let proxies = TrustedProxies::default();
        let hostile = headers(&[("host", "x;touch${IFS}pwned;#")]);
        assert_eq!(Origin::of(None, &hostile, false, &proxies).host, None);
        let url: PublicUrl = "https://backup.example.com:8432/".parse().unwrap();
        assert_eq!(url.host, "backup.example.com:8432");
        assert!("ftp://x".parse::<PublicUrl>().is_err());
        assert!("https://x/path".parse::<PublicUrl>().is_err());
    }
}
