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
}
