//! The gate's ladder, limits and regimes within one run.

use super::*;

const MIN: i64 = 60_000;
const INTERVAL: Duration = Duration::from_secs(300);

fn attempt(gate: &mut LoginGate, now: i64, outcome: LoginOutcome) -> Result<(), GateClosed> {
    let permit = gate.open(now)?;
    gate.record(&permit, now, outcome);
    Ok(())
}

#[test]
fn every_failure_of_an_unconfirmed_password_waits_29_minutes() {
    for outcome in [
        LoginOutcome::Rejected,
        LoginOutcome::Ambiguous,
        LoginOutcome::LockedOut,
    ] {
        let mut gate = LoginGate::new(GateState::default(), INTERVAL);
        attempt(&mut gate, 0, outcome).unwrap();
        assert!(gate.next_allowed_ms(0) >= 29 * MIN, "{outcome:?}");
        assert!(gate.open(29 * MIN - 1).is_err(), "{outcome:?}");
    }
}

#[test]
fn a_lockout_waits_an_hour_and_shares_the_ladder() {
    let mut gate = LoginGate::new(GateState::default(), INTERVAL);
    attempt(&mut gate, 0, LoginOutcome::Rejected).unwrap();
    let next = gate.next_allowed_ms(0);
    attempt(&mut gate, next, LoginOutcome::LockedOut).unwrap();
    assert!(gate.next_allowed_ms(next) >= next + 60 * MIN);
    assert_eq!(gate.state().consecutive_failures, 2);
}

#[test]
fn at_most_eight_failures_in_any_day() {
    let mut gate = LoginGate::new(GateState::default(), INTERVAL);
    let mut now = 0;
    let mut sent = Vec::new();
    while now < 2 * DAY_MS {
        now = gate.next_allowed_ms(now).max(now);
        attempt(&mut gate, now, LoginOutcome::Rejected).unwrap();
        sent.push(now);
        // The ladder resets its growth only on success; keep it short to test the cap.
        gate.state.consecutive_failures = 0;
        gate.state.not_before_ms = now + 29 * MIN;
    }
    for (i, t) in sent.iter().enumerate() {
        let in_day = sent[i..].iter().take_while(|u| **u < t + DAY_MS).count();
        assert!(in_day <= MAX_FAILURES_PER_DAY, "{in_day} failures from {t}");
    }
}

#[test]
fn confirmed_password_rides_out_a_share_outage_but_not_a_rejection() {
    let mut gate = LoginGate::new(GateState::default(), INTERVAL);
    attempt(&mut gate, 0, LoginOutcome::Accepted).unwrap();
    assert!(gate.confirmed());
    // Session lost; a re-login during an outage: ambiguous, not held against the password.
    attempt(&mut gate, 5 * MIN, LoginOutcome::Ambiguous).unwrap();
    assert_eq!(
        gate.next_allowed_ms(5 * MIN),
        10 * MIN,
        "one login per interval"
    );
    attempt(&mut gate, 10 * MIN, LoginOutcome::Rejected).unwrap();
    assert!(!gate.confirmed());
    assert!(gate.next_allowed_ms(10 * MIN) >= 39 * MIN);
    // Back in the strict regime: an ambiguous answer now counts.
    attempt(&mut gate, 39 * MIN, LoginOutcome::Ambiguous).unwrap();
    assert!(gate.next_allowed_ms(39 * MIN) >= 39 * MIN + 58 * MIN);
}

#[test]
fn relogins_at_most_one_per_interval_and_twelve_an_hour() {
    let mut gate = LoginGate::new(GateState::default(), Duration::from_secs(60));
    let mut now = 0;
    let mut logins = Vec::new();
    while now < 3 * HOUR_MS {
        now = gate.next_allowed_ms(now).max(now);
        attempt(&mut gate, now, LoginOutcome::Accepted).unwrap();
        logins.push(now);
        now += 1;
    }
    for pair in logins.windows(2) {
        assert!(pair[1] - pair[0] >= MIN);
    }
    for (i, t) in logins.iter().enumerate() {
        let in_hour = logins[i..].iter().take_while(|u| **u < t + HOUR_MS).count();
        assert!(in_hour <= MAX_LOGINS_PER_HOUR);
    }
}

#[test]
fn not_sent_costs_nothing() {
    let mut gate = LoginGate::new(GateState::default(), INTERVAL);
    let permit = gate.open(0).unwrap();
    gate.record(&permit, 0, LoginOutcome::NotSent);
    assert_eq!(gate.state().failures_ms, Vec::<i64>::new());
    assert_eq!(
        gate.next_allowed_ms(0),
        5 * MIN,
        "until it is given back, the per-interval login limit holds"
    );
    gate.release(permit);
    assert_eq!(gate.state().logins_ms, Vec::<i64>::new());
    assert!(
        gate.next_allowed_ms(0) <= 0,
        "a login that sent nothing leaves the next one free"
    );
    attempt(&mut gate, MIN, LoginOutcome::Ambiguous).unwrap();
    let permit = gate.open(31 * MIN).unwrap();
    gate.release(permit);
    assert_eq!(
        gate.state().logins_ms,
        vec![MIN],
        "a sent login still counts"
    );
    assert_eq!(gate.state().failures_ms, vec![MIN]);
    assert!(gate.next_allowed_ms(31 * MIN) <= 31 * MIN);
}

#[test]
fn a_wait_survives_a_restart_but_the_interval_limit_does_not() {
    let mut gate = LoginGate::new(GateState::default(), INTERVAL);
    attempt(&mut gate, 0, LoginOutcome::Rejected).unwrap();
    let restarted = LoginGate::new(gate.state().clone(), INTERVAL);
    assert_eq!(restarted.next_allowed_ms(MIN), gate.state().not_before_ms);
    let mut ok = LoginGate::new(GateState::default(), INTERVAL);
    attempt(&mut ok, 0, LoginOutcome::Accepted).unwrap();
    let restarted = LoginGate::new(ok.state().clone(), INTERVAL);
    assert!(
        restarted.next_allowed_ms(MIN) <= MIN,
        "a confirmed restart logs in at once"
    );
}
