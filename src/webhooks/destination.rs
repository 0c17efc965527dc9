//! Where webhooks may go: a retailer's public HTTP(S) endpoint, never this machine or its private
//! network (SSRF). Checked when an endpoint is registered and again on every delivery, against the
//! addresses the name resolves to at that moment (a name that resolved to a public address at
//! registration may point to 127.0.0.1 later: DNS rebinding). `WEBHOOK_ALLOW_PRIVATE=true` lifts
//! the rule (tests, or an intranet receiver the operator trusts).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use url::{Host, Url};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    #[error("the webhook URL is not a valid absolute URL")]
    NotAUrl,
    #[error("the webhook URL must start with https:// or http://")]
    Scheme,
    #[error("the webhook URL must not carry a user name or password")]
    Credentials,
    #[error("{host} does not resolve to any address")]
    Unresolvable { host: String },
    #[error(
        "{host} is a private, loopback or link-local address ({ip}): webhooks go to public addresses only \
         (the operator can allow private ones with WEBHOOK_ALLOW_PRIVATE=true)"
    )]
    Private { host: String, ip: IpAddr },
}

/// Whether the outside world can reach `ip`, i.e. none of loopback, private (RFC 1918, unique
/// local fc00::/7), link-local (169.254/16 with cloud metadata endpoints, fe80::/10), carrier-grade
/// NAT (100.64/10), unspecified, broadcast, multicast, documentation or reserved ranges.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            // An IPv4 address inside IPv6 (::ffff:a.b.c.d, ::a.b.c.d, NAT64 64:ff9b::/96) is judged as that address.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return is_public_v4(Ipv4Addr::new(a, b, c, d));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || s[0..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible (deprecated) and the rest of ::/96
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only 100::/64
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (b & 0xc0) == 64) // carrier-grade NAT 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b & 0xfe) == 18) // benchmarking 198.18/15
        || a >= 240) // reserved
}

/// What a registered URL must look like before any lookup: http(s), a host, no credentials.
pub fn parse(raw: &str) -> Result<Url, DestinationError> {
    let url = Url::parse(raw.trim()).map_err(|_| DestinationError::NotAUrl)?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(DestinationError::Scheme);
    }
    if url.host().is_none() {
        return Err(DestinationError::NotAUrl);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(DestinationError::Credentials);
    }
    Ok(url)
}

/// Checks that every address `url`'s host stands for now is public (unless `allow_private`).
pub async fn check(url: &Url, allow_private: bool) -> Result<(), DestinationError> {
    if allow_private {
        return Ok(());
    }
    let host = url.host_str().unwrap_or_default().to_owned();
    let addrs: Vec<IpAddr> = match url.host() {
        Some(Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
        Some(Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
        Some(Host::Domain(name)) => {
            let port = url.port_or_known_default().unwrap_or(443);
            tokio::net::lookup_host((name, port))
                .await
                .map_err(|_| DestinationError::Unresolvable { host: host.clone() })?
                .map(|a| a.ip())
                .collect()
        }
        None => return Err(DestinationError::NotAUrl),
    };
    if addrs.is_empty() {
        return Err(DestinationError::Unresolvable { host });
    }
    match addrs.into_iter().find(|ip| !is_public(*ip)) {
        Some(ip) => Err(DestinationError::Private { host, ip }),
        None => Ok(()),
    }
}

/// The resolver of the delivery client: resolves as the system does and refuses a name when any
/// of its addresses is not public, so the address checked is the address connected to (no window
/// between a check and the client's own lookup for DNS rebinding to use).
pub struct PublicOnlyResolver;

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
                return Err(Box::new(DestinationError::Private { host, ip: bad.ip() }) as Box<_>);
            }
            if addrs.is_empty() {
                return Err(Box::new(DestinationError::Unresolvable { host }) as Box<_>);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The client deliveries go through: no redirects (a 3xx is a failed attempt, as the
/// specification recommends, and a redirect must not lead inside), no proxy from the environment,
/// the given timeout, and unless `allow_private` the public-only resolver.
pub fn client(timeout: std::time::Duration, allow_private: bool) -> Result<reqwest::Client, reqwest::Error> {
    let builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .user_agent(concat!("optbridge-webhooks/", env!("CARGO_PKG_VERSION")));
    let builder = if allow_private {
        builder
    } else {
        builder.dns_resolver(Arc::new(PublicOnlyResolver))
    };
    builder.build()
}

/// An IP-literal host never reaches the resolver: checked here before each delivery.
pub fn literal_is_allowed(url: &Url, allow_private: bool) -> Result<(), DestinationError> {
    let ip = match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
        _ => return Ok(()),
    };
    if allow_private || is_public(ip) {
        Ok(())
    } else {
        Err(DestinationError::Private {
            host: url.host_str().unwrap_or_default().to_owned(),
            ip,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_and_link_local_addresses_are_not_public() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2001:db8::1",
            "ff02::1",
        ] {
            assert!(!is_public(bad.parse().unwrap()), "{bad} must not count as public");
        }
        for good in [
            "93.184.216.34",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(good.parse().unwrap()), "{good} is public");
        }
    }

    #[test]
    fn urls_must_be_http_without_credentials() {
        assert!(parse("https://hooks.example.com/optbridge").is_ok());
        assert_eq!(parse("ftp://example.com/"), Err(DestinationError::Scheme));
        assert_eq!(parse("file:///etc/passwd"), Err(DestinationError::Scheme));
        assert_eq!(
            parse("https://user:pw@example.com/"),
            Err(DestinationError::Credentials)
        );
        assert_eq!(parse("not a url"), Err(DestinationError::NotAUrl));
    }

    #[tokio::test]
    async fn literal_and_named_private_hosts_are_refused_unless_allowed() {
        for raw in [
            "http://127.0.0.1:9/",
            "http://[::1]/",
            "http://169.254.169.254/latest",
            "http://localhost/",
        ] {
            let url = parse(raw).unwrap();
            assert!(
                matches!(check(&url, false).await, Err(DestinationError::Private { .. })),
                "{raw}"
            );
            assert_eq!(check(&url, true).await, Ok(()), "{raw} allowed");
        }
        assert!(literal_is_allowed(&parse("http://10.0.0.1/").unwrap(), false).is_err());
        assert!(literal_is_allowed(&parse("http://10.0.0.1/").unwrap(), true).is_ok());
    }
}
