//! How a transport error is told to a person. reqwest's own text for a failed request is
//! "error sending request", which says nothing a user can act on; the cause that does (a
//! refused connection, a name that does not resolve, a certificate) sits at the bottom of the
//! error's source chain, sometimes inside an `io::Error` whose `source` skips it.

use std::error::Error;

/// The text of the deepest error in `error`'s chain: what actually went wrong.
pub fn deepest_cause(error: &(dyn Error + 'static)) -> String {
    chain(error)
        .last()
        .map_or_else(|| error.to_string(), ToString::to_string)
}

/// The hint to check this host's clock, when `error` is a certificate refused as not yet valid
/// or expired: at the first boot of a board without a real-time clock, every certificate looks
/// like that, and the error alone sends people looking at the server.
pub fn clock_hint(error: &(dyn Error + 'static)) -> Option<&'static str> {
    use rustls::CertificateError;
    chain(error).find_map(|e| match e.downcast_ref::<rustls::Error>() {
        Some(rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        )) => Some(
            "the certificate is not valid yet by this host's clock: check the host's clock (NTP, `timedatectl`), it is probably behind",
        ),
        Some(rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        )) => Some(
            "the certificate has expired by this host's clock: check the host's clock (NTP, `timedatectl`) before suspecting the server",
        ),
        _ => None,
    })
}

/// The deepest cause, with the clock hint when there is one.
pub fn explain(error: &(dyn Error + 'static)) -> String {
    let cause = deepest_cause(error);
    match clock_hint(error) {
        Some(hint) => format!("{cause} ({hint})"),
        None => cause,
    }
}

/// Every error in `error`'s chain, itself first, including the one an `io::Error` wraps.
pub fn chain<'a>(
    error: &'a (dyn Error + 'static),
) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    let mut next = Some(error);
    std::iter::from_fn(move || {
        let current = next?;
        let wrapped = current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn Error + 'static));
        next = wrapped.or_else(|| current.source());
        Some(current)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("error sending request")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_deepest_cause_and_the_error_an_io_error_wraps() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused here");
        let outer = Outer(refused);
        assert_eq!(deepest_cause(&outer), "refused here");
        let inner = std::io::Error::other(std::fmt::Error);
        let outer = Outer(inner);
        assert!(chain(&outer).any(|e| e.is::<std::fmt::Error>()));
    }

    #[test]
    fn a_certificate_not_yet_valid_or_expired_says_to_check_the_clock() {
        for (cert, word) in [
            (rustls::CertificateError::NotValidYet, "behind"),
            (rustls::CertificateError::Expired, "expired"),
        ] {
            let tls = rustls::Error::InvalidCertificate(cert);
            let outer = Outer(std::io::Error::other(tls));
            let text = explain(&outer);
            assert!(
                text.contains("check the host's clock") && text.contains(word),
                "{text}"
            );
        }
        let other = Outer(std::io::Error::other(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        )));
        assert!(!explain(&other).contains("clock"));
    }
}
