//! Why an account shows no glucose value: the `dexcom_account_status` state set (one series per
//! status, 1 for the current one) and the reason the login gate holds the password
//! (`dexcom_login_hold_reason`). A person woken at night is told *why* the value is missing, and
//! the catch-all alert can say it; both come from the gate's persisted memory too, so a restart
//! does not turn a held login into silence.

use std::sync::atomic::{AtomicU8, Ordering};

/// What an account's value looks like to a person, and why it is missing when it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStatus {
    /// A current glucose value is shown.
    Ok,
    /// The exporter has not polled the account yet.
    Starting,
    /// The newest reading is older than `--glucose.max-age` (sensor, transmitter or phone
    /// stopped uploading).
    Stale,
    /// Share has no reading of the last 24 hours (sharing off, no follower, no sensor).
    NoReadings,
    /// Share served readings, but none that can be shown (out of range or malformed rows).
    ReadingsRejected,
    /// The login gate holds the password back (after a failed login, or a login limit).
    LoginHeld,
    /// Share refused the credentials at the last login.
    LoginFailing,
    /// Polls of Share fail (server errors, timeouts, no connection, rate limiting, and
    /// Cloudflare's own answers in front of Share: the `edge_*` reasons).
    ShareFailing,
    /// The newest readings are dated ahead of Share's clock (the phone's clock is wrong), so
    /// they are refused.
    ClockSkew,
}

impl AccountStatus {
    /// Every status, in the order they are served.
    pub const ALL: [AccountStatus; 9] = [
        AccountStatus::Ok,
        AccountStatus::Starting,
        AccountStatus::Stale,
        AccountStatus::NoReadings,
        AccountStatus::ReadingsRejected,
        AccountStatus::LoginHeld,
        AccountStatus::LoginFailing,
        AccountStatus::ShareFailing,
        AccountStatus::ClockSkew,
    ];

    /// The `status` label.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Ok => "ok",
            AccountStatus::Starting => "starting",
            AccountStatus::Stale => "stale",
            AccountStatus::NoReadings => "no_readings",
            AccountStatus::ReadingsRejected => "readings_rejected",
            AccountStatus::LoginHeld => "login_held",
            AccountStatus::LoginFailing => "login_failing",
            AccountStatus::ShareFailing => "share_failing",
            AccountStatus::ClockSkew => "clock_skew",
        }
    }

    /// The status in words, for the landing page and the log.
    pub fn words(self) -> &'static str {
        match self {
            AccountStatus::Ok => "showing a current value",
            AccountStatus::Starting => "waiting for the first poll of Share",
            AccountStatus::Stale => {
                "no new reading: the sensor, transmitter or phone stopped uploading"
            }
            AccountStatus::NoReadings => {
                "Share has no readings: check that sharing is on and a follower is set up"
            }
            AccountStatus::ReadingsRejected => "Share's readings cannot be shown (unusable rows)",
            AccountStatus::LoginHeld => {
                "login held back to protect the Dexcom account from a lockout"
            }
            AccountStatus::LoginFailing => "Dexcom Share refuses the login",
            AccountStatus::ShareFailing => {
                "Dexcom Share, or its web front (Cloudflare), cannot be reached or keeps failing; not a password problem"
            }
            AccountStatus::ClockSkew => {
                "readings are dated in the future: check the clock of the phone running the Dexcom app"
            }
        }
    }

    fn index(self) -> u8 {
        index_in(&Self::ALL, self)
    }

    fn from_index(index: u8) -> Self {
        at_index(&Self::ALL, index).unwrap_or(AccountStatus::Starting)
    }
}

/// Why the login gate holds the password back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldReason {
    /// The gate does not hold it.
    None,
    /// Share rejected the password.
    AuthFailed,
    /// Share said the account is locked.
    LockedOut,
    /// A login of a password never accepted ended without a certain answer (a timeout, a
    /// server error, an exporter killed mid-login): Share may have counted it.
    Unconfirmed,
    /// The limits on logins per interval, per hour or per day.
    LoginLimit,
    /// Four failed logins in a row (whatever passwords they carried): nothing more until a day
    /// after the first, or `check --reset-gate`.
    FailuresInARow,
    /// The login gate's memory cannot be saved (a full or read-only disk): a login that cannot
    /// be counted is not made.
    StateUnwritable,
    /// The login gate's memory exists but cannot be read: its count is not forgotten.
    StateUnreadable,
    /// Share resolved this entry's login to an account another entry logs in as.
    DuplicateLogin,
}

impl HoldReason {
    /// Every reason, in the order they are served.
    pub const ALL: [HoldReason; 9] = [
        HoldReason::None,
        HoldReason::AuthFailed,
        HoldReason::LockedOut,
        HoldReason::Unconfirmed,
        HoldReason::LoginLimit,
        HoldReason::FailuresInARow,
        HoldReason::StateUnwritable,
        HoldReason::StateUnreadable,
        HoldReason::DuplicateLogin,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            HoldReason::None => "none",
            HoldReason::AuthFailed => "auth_failed",
            HoldReason::LockedOut => "locked_out",
            HoldReason::Unconfirmed => "unconfirmed",
            HoldReason::LoginLimit => "login_limit",
            HoldReason::FailuresInARow => "failures_in_a_row",
            HoldReason::StateUnwritable => "state_unwritable",
            HoldReason::StateUnreadable => "state_unreadable",
            HoldReason::DuplicateLogin => "duplicate_login",
        }
    }

    /// What happened, as the log and the landing page say it.
    pub fn words(self) -> &'static str {
        match self {
            HoldReason::None => "no hold",
            HoldReason::AuthFailed => "Share rejected the password",
            HoldReason::LockedOut => "Share locked the account",
            HoldReason::Unconfirmed => {
                "a login of a password Share never accepted ended without an answer"
            }
            HoldReason::LoginLimit => "the login limits were reached",
            HoldReason::FailuresInARow => {
                "four logins failed in a row, one short of Dexcom's lockout (held a day from the first, or until `dexcom_exporter check --reset-gate`)"
            }
            HoldReason::StateUnwritable => {
                "the state directory cannot be written (a full or read-only disk?), so a login could not be counted"
            }
            HoldReason::StateUnreadable => {
                "the login gate's state file cannot be read (its owner or format?), so its count of failed logins is unknown"
            }
            HoldReason::DuplicateLogin => {
                "Share says another configured entry is the same Dexcom account: list it once"
            }
        }
    }

    /// Whether the hold lasts until its cause is fixed (the state directory, a duplicate
    /// entry), not until a time: it is retried each interval, and shown until then.
    pub fn lasts_until_fixed(self) -> bool {
        matches!(
            self,
            HoldReason::StateUnwritable | HoldReason::StateUnreadable | HoldReason::DuplicateLogin
        )
    }

    fn index(self) -> u8 {
        index_in(&Self::ALL, self)
    }

    fn from_index(index: u8) -> Self {
        at_index(&Self::ALL, index).unwrap_or(HoldReason::None)
    }
}

/// Where `value` stands in `all`, as a cell stores it.
fn index_in<T: PartialEq>(all: &[T], value: T) -> u8 {
    all.iter()
        .position(|v| *v == value)
        .and_then(|i| u8::try_from(i).ok())
        .unwrap_or_default()
}

/// The value a cell's `index` stands for in `all`.
fn at_index<T: Copy>(all: &[T], index: u8) -> Option<T> {
    all.get(usize::from(index)).copied()
}

/// An atomic cell of a small enum: written by the poller, read by scrapes without a lock.
#[derive(Debug, Default)]
pub(super) struct StatusCell(AtomicU8);

impl StatusCell {
    pub(super) fn set_status(&self, status: AccountStatus) {
        self.0.store(status.index(), Ordering::Release);
    }

    pub(super) fn status(&self) -> AccountStatus {
        AccountStatus::from_index(self.0.load(Ordering::Acquire))
    }

    pub(super) fn set_hold(&self, reason: HoldReason) {
        self.0.store(reason.index(), Ordering::Release);
    }

    pub(super) fn hold(&self) -> HoldReason {
        HoldReason::from_index(self.0.load(Ordering::Acquire))
    }
}

/// The status a scrape shows: `ok` while the value is current, whatever the last poll said;
/// otherwise what the last poll found, where a poll that read fine means the value went stale.
pub fn shown_status(value_is_current: bool, polled: AccountStatus) -> AccountStatus {
    match (value_is_current, polled) {
        (true, _) => AccountStatus::Ok,
        (false, AccountStatus::Ok) => AccountStatus::Stale,
        (false, other) => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_current_value_is_ok_whatever_the_poll_and_a_missing_one_says_why() {
        for status in AccountStatus::ALL {
            assert_eq!(shown_status(true, status), AccountStatus::Ok);
        }
        assert_eq!(shown_status(false, AccountStatus::Ok), AccountStatus::Stale);
        assert_eq!(
            shown_status(false, AccountStatus::LoginHeld),
            AccountStatus::LoginHeld
        );
    }

    #[test]
    fn cells_round_trip_every_value() {
        let cell = StatusCell::default();
        assert_eq!(cell.status(), AccountStatus::Ok, "index 0 before any write");
        for status in AccountStatus::ALL {
            cell.set_status(status);
            assert_eq!(cell.status(), status);
        }
        for reason in HoldReason::ALL {
            cell.set_hold(reason);
            assert_eq!(cell.hold(), reason);
        }
    }
}
