//! Which clock each of the gate's times is in. Every time in [`super::GateState`] (failures,
//! logins, waits, the request in flight) is the **host's wall clock** in Unix ms, the one clock
//! that survives a restart, whatever Share's `Date` says, and is clamped on load
//! ([`super::LoginGate::restore`]). The one-login-per-interval limit lives only in the process
//! and is kept on the host's **monotonic** clock ([`GateNow::mono_ms`]), so a wall clock stepped
//! either way neither holds a re-login longer nor lets two through in one interval.

/// Now, as the gate reads it: the host's wall clock, for everything saved, and the host's
/// monotonic clock, for the in-process per-interval limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateNow {
    /// The host's wall clock, Unix ms.
    pub wall_ms: i64,
    /// The host's monotonic clock, ms ([`crate::clock::Clock::monotonic`]).
    pub mono_ms: i64,
}

/// A plain Unix ms is a moment at which both clocks read the same (the gate's own tests, and
/// callers with no wall clock steps to fear).
impl From<i64> for GateNow {
    fn from(ms: i64) -> Self {
        GateNow {
            wall_ms: ms,
            mono_ms: ms,
        }
    }
}
