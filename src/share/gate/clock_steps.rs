//! The gate under a host wall clock that is stepped while it runs: the per-interval re-login
//! limit is kept on the monotonic clock, so a step ahead does not hold a re-login for the size
//! of the step, and a step back does not let a second one through within the interval.

use super::*;

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
