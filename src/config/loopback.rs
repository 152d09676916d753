//! Whether a URL points at this machine: plain HTTP is accepted for Share and remote-write URLs
//! only there (a local simulator or receiver), since credentials would otherwise travel in clear.

/// Whether the URL's host is this machine: the only place plain http may go.
pub(super) fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
