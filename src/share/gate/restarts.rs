//! The gate across restarts: a run killed mid-login, a state written under a wrong clock, a
//! changed password within the account's daily cap.

use super::*;

const MIN: i64 = 60_000;
const INTERVAL: Duration = Duration::from_secs(300);

/// A run that is killed after saving "in flight" and before the answer.
fn killed_mid_login(state: GateState, now: i64) -> GateState {
    let mut gate = LoginGate::restore(state, INTERVAL, now);
    let permit = gate.open(now).expect("the gate is open");
    gate.begin_request(&permit, now);
    gate.state().clone()
}

#[test]
fn a_restart_loop_sends_a_wrong_password_once_per_wait() {
    // Killed mid-login every 10 seconds for two hours: each start asks the gate first.
    let mut state = GateState::default();
    let mut sent = Vec::new();
    let mut now = 0;
    while now < 2 * 60 * MIN {
        let gate = LoginGate::restore(state.clone(), INTERVAL, now);
        if gate.next_allowed_ms(now) <= now {
            state = killed_mid_login(gate.state().clone(), now);
            sent.push(now);
        } else {
            state = gate.state().clone();
        }
        now += 10_000;
    }
    assert_eq!(sent.len(), 3, "{sent:?}");
    for pair in sent.windows(2) {
        assert!(pair[1] - pair[0] >= 29 * MIN, "{sent:?}");
    }
    let gate = LoginGate::restore(state, INTERVAL, now);
    assert_eq!(
        gate.hold(now).and_then(|h| h.after),
        Some(FailureKind::Unfinished)
    );
}

#[test]
fn a_confirmed_password_killed_once_waits_an_interval_and_twice_counts() {
    let mut gate = LoginGate::new(GateState::default(), INTERVAL);
    let permit = gate.open(0).unwrap();
    gate.record(&permit, 0, LoginOutcome::Accepted);
    let state = killed_mid_login(gate.state().clone(), 10 * MIN);
    let gate = LoginGate::restore(state, INTERVAL, 10 * MIN + 1000);
    assert!(gate.confirmed());
    assert_eq!(gate.next_allowed_ms(10 * MIN + 1000), 15 * MIN);
    let state = killed_mid_login(gate.state().clone(), 15 * MIN);
    let gate = LoginGate::restore(state, INTERVAL, 15 * MIN + 1000);
    assert!(!gate.confirmed(), "a second run killed mid-login counts");
    assert!(gate.next_allowed_ms(15 * MIN + 1000) >= 15 * MIN + 29 * MIN);
}

#[test]
fn a_state_from_a_wrong_clock_holds_no_longer_than_the_ladder() {
    let state = GateState {
        not_before_ms: 40 * 24 * 60 * MIN,
        failures_ms: vec![30 * 24 * 60 * MIN],
        logins_ms: vec![30 * 24 * 60 * MIN],
        ..GateState::default()
    };
    let gate = LoginGate::restore(state, INTERVAL, 0);
    assert!(
        gate.next_allowed_ms(0) <= 6 * 60 * MIN,
        "{}",
        gate.next_allowed_ms(0)
    );
    assert!(gate.state().failures_ms.iter().all(|t| *t <= 0));
}

#[test]
fn a_new_password_is_tried_at_once_but_within_the_accounts_daily_cap() {
    let mut gate = LoginGate::new(GateState::default(), INTERVAL);
    let permit = gate.open(0).unwrap();
    gate.record(&permit, 0, LoginOutcome::Rejected);
    let fresh = LoginGate::new(gate.for_new_password(), INTERVAL);
    assert!(fresh.next_allowed_ms(MIN) <= MIN, "tried at once");
    let mut state = GateState::default();
    for i in 0..MAX_FAILURES_PER_DAY as i64 {
        state.failures_ms.push(i * 30 * MIN);
    }
    let gate = LoginGate::new(state, INTERVAL);
    let fresh = LoginGate::new(gate.for_new_password(), INTERVAL);
    let now = 8 * 30 * MIN;
    assert!(
        fresh.next_allowed_ms(now) > now,
        "a ninth attempt in the day waits, whatever the password"
    );
}
