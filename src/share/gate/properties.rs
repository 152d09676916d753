//! Property tests of the gate: whatever Share answers and whenever the exporter asks, with
//! restarts in between, its limits hold.

use proptest::prelude::*;

use super::*;

fn outcome() -> impl Strategy<Value = LoginOutcome> {
    prop_oneof![
        Just(LoginOutcome::Accepted),
        Just(LoginOutcome::Rejected),
        Just(LoginOutcome::LockedOut),
        Just(LoginOutcome::Ambiguous),
        Just(LoginOutcome::NotSent),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever Share answers and whenever the exporter asks (with restarts in between),
    /// the limits hold.
    #[test]
    fn the_limits_hold_for_any_outcomes_and_times(
        steps in prop::collection::vec((0i64..3 * 3_600_000, outcome(), any::<bool>()), 1..120),
    ) {
        let interval = Duration::from_secs(300);
        let mut gate = LoginGate::new(GateState::default(), interval);
        let mut now = 1_000_000_000_000i64;
        // (time, outcome, confirmed before) of every password-bearing request sent.
        let mut sent: Vec<(i64, LoginOutcome, bool)> = Vec::new();
        let mut since_restart: Vec<i64> = Vec::new();
        for (wait, outcome, restart) in steps {
            now += wait;
            if restart {
                gate = LoginGate::new(gate.state().clone(), interval);
                since_restart.clear();
            }
            let confirmed = gate.confirmed();
            match gate.open(now) {
                Ok(permit) => {
                    gate.record(&permit, now, outcome);
                    if outcome == LoginOutcome::NotSent {
                        gate.release(permit);
                    } else {
                        sent.push((now, outcome, confirmed));
                        since_restart.push(now);
                    }
                }
                Err(closed) => prop_assert!(closed.until_ms > now),
            }
        }
        // After a failure in the strict regime (or a credential code in any regime), the
        // next password waits 29 minutes, an hour after a lockout.
        for pair in sent.windows(2) {
            let (t0, o0, c0) = pair[0];
            let t1 = pair[1].0;
            let strict_failure = matches!(o0, LoginOutcome::Rejected | LoginOutcome::LockedOut)
                || (o0 == LoginOutcome::Ambiguous && !c0);
            if strict_failure {
                let least = if o0 == LoginOutcome::LockedOut { LOCKOUT_WAIT } else { STRICT_WAIT };
                prop_assert!(t1 - t0 >= i64::try_from(least.as_millis()).unwrap());
            }
        }
        // At most 8 counted failures in any 24 hours.
        let failures: Vec<i64> = sent
            .iter()
            .filter(|(_, o, c)| matches!(o, LoginOutcome::Rejected | LoginOutcome::LockedOut) || (*o == LoginOutcome::Ambiguous && !c))
            .map(|(t, _, _)| *t)
            .collect();
        for (i, t) in failures.iter().enumerate() {
            let in_day = failures[i..].iter().take_while(|u| **u < t + DAY_MS).count();
            prop_assert!(in_day <= MAX_FAILURES_PER_DAY);
        }
        // Logins: at most 12 in any hour, and within one run one per interval.
        let logins: Vec<i64> = sent.iter().map(|(t, _, _)| *t).collect();
        for (i, t) in logins.iter().enumerate() {
            let in_hour = logins[i..].iter().take_while(|u| **u < t + HOUR_MS).count();
            prop_assert!(in_hour <= MAX_LOGINS_PER_HOUR);
        }
        for pair in since_restart.windows(2) {
            prop_assert!(pair[1] - pair[0] >= 300_000);
        }
    }
}
