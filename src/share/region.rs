//! Share regions (each with its own host and application ID) and the endpoint paths.
//!
//! Accounts are regional: a US account only works on the US host, and a wrong region is
//! answered exactly like a wrong password. Keeping the region explicit lets error messages
//! point users at it.

use std::fmt;
use std::str::FromStr;

/// The all-zero UUID that Share returns (with HTTP 200) when a login silently failed.
pub const NIL_UUID: &str = "00000000-0000-0000-0000-000000000000";

/// Application ID the Dexcom app uses on the US and outside-US hosts.
const APPLICATION_ID_US_OUS: &str = "d89443d2-327c-4a6f-89e5-496bbb0317db";
/// Application ID used on the Japanese host (also the older Share app's ID).
const APPLICATION_ID_JP: &str = "d8665ade-9673-4e27-9ff6-92db4ce13d13";

/// A Dexcom Share region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Region {
    /// Accounts registered in the United States (`share2.dexcom.com`).
    #[default]
    Us,
    /// Accounts registered outside the US, Canada included (`shareous1.dexcom.com`).
    Ous,
    /// Accounts registered in Japan (`share.dexcom.jp`).
    Jp,
}

impl Region {
    /// Every region, in the order users see them in messages.
    pub const ALL: [Region; 3] = [Region::Us, Region::Ous, Region::Jp];

    /// The base URL of the Share services for this region, with its trailing slash.
    pub fn base_url(self) -> &'static str {
        match self {
            Region::Us => "https://share2.dexcom.com/ShareWebServices/Services/",
            Region::Ous => "https://shareous1.dexcom.com/ShareWebServices/Services/",
            Region::Jp => "https://share.dexcom.jp/ShareWebServices/Services/",
        }
    }

    /// The application ID the region's servers expect in login bodies.
    pub fn application_id(self) -> &'static str {
        match self {
            Region::Us | Region::Ous => APPLICATION_ID_US_OUS,
            Region::Jp => APPLICATION_ID_JP,
        }
    }

    /// Every application ID a Share host of this region is known to accept.
    pub fn accepted_application_ids(self) -> &'static [&'static str] {
        match self {
            Region::Us | Region::Ous => &[APPLICATION_ID_US_OUS, APPLICATION_ID_JP],
            Region::Jp => &[APPLICATION_ID_JP],
        }
    }

    /// The short name used in flags and configuration (`us`, `ous`, `jp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Region::Us => "us",
            Region::Ous => "ous",
            Region::Jp => "jp",
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A region name that is not `us`, `ous` or `jp`.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "unknown Dexcom region {given:?}: use \"us\" (United States), \"ous\" (outside the US, Canada included) or \"jp\" (Japan)"
)]
pub struct InvalidRegion {
    /// What the user wrote.
    pub given: String,
}

impl FromStr for Region {
    type Err = InvalidRegion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Region::ALL
            .into_iter()
            .find(|region| region.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| InvalidRegion {
                given: s.to_owned(),
            })
    }
}

/// The three Share endpoints a follower client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `General/AuthenticatePublisherAccount`: account name + password → account ID.
    Authenticate,
    /// `General/LoginPublisherAccountById`: account ID + password → session ID.
    LoginById,
    /// `Publisher/ReadPublisherLatestGlucoseValues`: session ID → readings.
    ReadGlucose,
}

impl Endpoint {
    /// Every endpoint, in the order a login and a read use them.
    pub const ALL: [Endpoint; 3] = [
        Endpoint::Authenticate,
        Endpoint::LoginById,
        Endpoint::ReadGlucose,
    ];

    /// The path below the base URL.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Authenticate => "General/AuthenticatePublisherAccount",
            Endpoint::LoginById => "General/LoginPublisherAccountById",
            Endpoint::ReadGlucose => "Publisher/ReadPublisherLatestGlucoseValues",
        }
    }

    /// A short snake_case name, used as the `endpoint` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Authenticate => "authenticate",
            Endpoint::LoginById => "login",
            Endpoint::ReadGlucose => "read_glucose",
        }
    }

    /// Whether this endpoint is one of the two login steps.
    pub fn is_login(self) -> bool {
        !matches!(self, Endpoint::ReadGlucose)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_parse_case_insensitively_and_reject_others() {
        assert_eq!("OUS".parse::<Region>().ok(), Some(Region::Ous));
        assert_eq!(" jp ".parse::<Region>().ok(), Some(Region::Jp));
        let err = "eu".parse::<Region>().unwrap_err().to_string();
        assert!(err.contains("\"eu\"") && err.contains("ous"), "{err}");
    }

    #[test]
    fn jp_uses_its_own_application_id() {
        assert_ne!(Region::Jp.application_id(), Region::Us.application_id());
        assert_eq!(Region::Us.application_id(), Region::Ous.application_id());
        assert!(
            Region::Jp
                .base_url()
                .ends_with("/ShareWebServices/Services/")
        );
    }
}
