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

/// The gate under a host wall clock stepped while it runs: a step ahead does not hold a
/// re-login for the size of the step, a step back does not let a second one through.
#[cfg(test)]
mod tests {
    use super::super::*;

    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;
    const INTERVAL: Duration = Duration::from_secs(300);

    fn at(wall_ms: i64, mono_ms: i64) -> GateNow {
        GateNow { wall_ms, mono_ms }
    }

    #[test]
    fn a_wall_clock_stepped_an_hour_either_way_moves_the_interval_limit_not_at_all() {
        for step in [HOUR, -HOUR, 24 * HOUR, -24 * HOUR] {
            let mut gate = LoginGate::new(GateState::default(), INTERVAL);
            let wall = 1_800_000_000_000;
            let permit = gate.open(at(wall, 0)).unwrap();
            gate.record(&permit, wall, LoginOutcome::Accepted);
            // A minute later the wall clock is stepped; the session ends.
            let now = at(wall + MIN + step, MIN);
            assert!(
                gate.open(now).is_err(),
                "step {step}: a second login within the interval"
            );
            assert_eq!(
                gate.next_allowed_ms(now),
                wall + step + 5 * MIN,
                "step {step}: the re-login waits out the interval on the stepped wall clock"
            );
            assert!(
                gate.open(at(wall + 5 * MIN + step, 5 * MIN)).is_ok(),
                "step {step}: one interval after the last login"
            );
        }
    }
}
