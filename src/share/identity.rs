//! Who Dexcom counts failed logins for: one Share service (its origin, however the URL is
//! spelt) and one publisher login (a username however it is cased or padded, or an account
//! ID). The login gate's memory is kept per identity, not per configuration entry, so two
//! spellings of one account, `check` and the service, or an e-mail and a username that Share
//! resolves to one account ID, all count against one limit, as Dexcom counts them.

use std::fmt;

use uuid::Uuid;

use super::Login;

/// One Dexcom login at one Share service, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LoginIdentity {
    origin: String,
    login: IdentityLogin,
}

/// The login part of an identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum IdentityLogin {
    /// A username, e-mail or phone number: trimmed and case-folded (Share accepts any case).
    Name(String),
    /// An account ID, as Share's `AuthenticatePublisherAccount` returns it.
    Id(Uuid),
}

impl LoginIdentity {
    /// The identity of `login` at the Share service `base_url`.
    pub fn new(base_url: &reqwest::Url, login: &Login) -> Self {
        LoginIdentity {
            origin: origin(base_url),
            login: match login {
                Login::Username(name) => IdentityLogin::Name(normalise_name(name)),
                Login::AccountId(id) => IdentityLogin::Id(*id),
            },
        }
    }

    /// The identity of the account ID `id` at the same Share service.
    pub fn with_account_id(&self, id: Uuid) -> Self {
        LoginIdentity {
            origin: self.origin.clone(),
            login: IdentityLogin::Id(id),
        }
    }

    /// Whether this identity names an account ID (not a name to resolve).
    pub fn is_account_id(&self) -> bool {
        matches!(self.login, IdentityLogin::Id(_))
    }

    /// A stable file-name part for this identity (FNV-1a of its text, in hex): the same for
    /// every spelling, every process and every version.
    pub fn file_key(&self) -> String {
        format!("{:016x}", fnv1a(self.to_string().as_bytes()))
    }
}

impl fmt::Display for LoginIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.login {
            IdentityLogin::Name(name) => write!(f, "username {name} at {}", self.origin),
            IdentityLogin::Id(id) => write!(f, "account ID {id} at {}", self.origin),
        }
    }
}

/// A login name as Share compares it: without surrounding white space, case-folded.
pub fn normalise_name(name: &str) -> String {
    name.trim().to_lowercase()
}

/// The service a URL reaches: scheme, host and port, with the host lower-cased, without a
/// trailing dot, and every name for this machine (`localhost`, `127.0.0.1`, `::1`) as one.
fn origin(url: &reqwest::Url) -> String {
    let host = url
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let loopback = host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let host = if loopback {
        "loopback".to_owned()
    } else {
        host
    };
    let port = url.port_or_known_default().unwrap_or(0);
    format!("{}://{host}:{port}", url.scheme())
}

/// FNV-1a, 64 bit: fixed here, not by the standard library's hasher (which may change between
/// Rust versions), so a name maps to the same number in every build.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(url: &str, login: Login) -> LoginIdentity {
        LoginIdentity::new(&url.parse().unwrap(), &login)
    }

    #[test]
    fn spellings_of_one_login_are_one_identity() {
        let base = "https://share2.dexcom.com/ShareWebServices/Services/";
        let kid = id(base, Login::Username("kid".into()));
        for spelling in [" kid", "KID", "Kid ", "\tkid\n"] {
            assert_eq!(
                id(base, Login::Username(spelling.into())),
                kid,
                "{spelling:?}"
            );
        }
        assert_eq!(
            id(
                "https://SHARE2.dexcom.com.:443/other/",
                Login::Username("kid".into())
            ),
            kid
        );
        assert_ne!(
            id(
                "https://shareous1.dexcom.com/ShareWebServices/Services/",
                Login::Username("kid".into())
            ),
            kid,
            "another region is another account"
        );
        assert_ne!(id(base, Login::Username("kid2".into())), kid);
    }

    #[test]
    fn every_name_of_this_machine_is_one_origin() {
        let a = id("http://127.0.0.1:8080/", Login::Username("kid".into()));
        for url in [
            "http://localhost:8080/",
            "http://LOCALHOST:8080/x/",
            "http://[::1]:8080/",
        ] {
            assert_eq!(id(url, Login::Username("kid".into())), a, "{url}");
        }
        assert_ne!(
            id("http://127.0.0.1:8081/", Login::Username("kid".into())),
            a
        );
    }

    #[test]
    fn file_keys_are_stable_and_distinct() {
        let base = "https://share2.dexcom.com/ShareWebServices/Services/";
        let kid = id(base, Login::Username("kid".into()));
        assert_eq!(
            kid.file_key(),
            id(base, Login::Username("KID".into())).file_key()
        );
        assert_eq!(kid.file_key().len(), 16);
        let uuid = Uuid::parse_str("11111111-2222-3333-4444-555555555555").unwrap();
        assert_ne!(kid.with_account_id(uuid).file_key(), kid.file_key());
        assert_eq!(
            kid.with_account_id(uuid),
            id(base, Login::AccountId(uuid)),
            "a learned ID is the same identity as the ID configured"
        );
    }
}
