//! The label sets of the scraped metrics, typed so that a series cannot be written with a
//! missing or misspelt label. Field order is label order on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;

/// `{account}`: one Dexcom account.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AccountLabels {
    /// The account's configured name.
    pub account: String,
}

/// `{account, reason}`: a failed poll of one account, by [`crate::share::ErrorReason`].
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The account's configured name.
    pub account: String,
    /// The error's reason label.
    pub reason: &'static str,
}

/// `{account, reason}`: a reading Share served that was not published, by
/// [`crate::share::RejectReason`].
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    /// The account's configured name.
    pub account: String,
    /// `future`, `out_of_range` or `malformed`.
    pub reason: &'static str,
}

/// `{account, status}`: one state of `dexcom_account_status`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    /// The account's configured name.
    pub account: String,
    /// The status, [`super::AccountStatus::as_str`].
    pub status: &'static str,
}

/// `{account, reason}`: one state of `dexcom_login_hold_reason`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// The account's configured name.
    pub account: String,
    /// The reason, [`super::HoldReason::as_str`].
    pub reason: &'static str,
}

/// `{account, level}`: one alert threshold of one account.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ThresholdLabels {
    /// The account's configured name.
    pub account: String,
    /// `urgent_low`, `low` or `high`.
    pub level: &'static str,
}

/// `{origin}`: one Share host, as scheme, host and port (`https://share2.dexcom.com`): each has
/// its own clock.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OriginLabels {
    /// The Share host's origin.
    pub origin: String,
}

/// `{endpoint}`: one Share endpoint (no account: latency is a property of Share).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// The endpoint's label, [`crate::share::Endpoint::as_str`].
    pub endpoint: &'static str,
}

/// The labels of `dexcom_exporter_build_info`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildInfoLabels {
    pub version: &'static str,
    /// Git revision, or `unknown`.
    pub revision: &'static str,
    /// Compiler version, or `unknown`.
    pub rustversion: &'static str,
}

/// `{remote_name, url}`: one remote-write receiver, as Prometheus labels its own.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RemoteLabels {
    /// The receiver's `name`, or the URL's host and port.
    pub remote_name: String,
    /// The receiver's URL (never holds credentials: refused in the configuration).
    pub url: String,
}
