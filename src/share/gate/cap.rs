//! The cap on failures in a row, whatever passwords they carried, and the ceiling on a
//! confirmed password's ambiguous re-logins.

use super::*;

const MIN: i64 = 60_000;
const INTERVAL: Duration = Duration::from_secs(300);

/// Sends at the first moment the gate allows, `outcome` each time, until `until`; the times sent.
fn hammer(gate: &mut LoginGate, outcome: LoginOutcome, from: i64, until: i64) -> Vec<i64> {
    let mut sent = Vec::new();
    let mut now = from;
    while now < until {
        now = gate.next_allowed_ms(now).max(now);
        if now >= until {
            break;
        }
        let permit = gate.open(now).unwrap();
        gate.record(&permit, now, outcome);
        sent.push(now);
    }
    sent
}

#[test]
fn an_unchanged_wrong_password_stops_at_four_in_a_row_for_a_day() {
    let mut gate = LoginGate::new(GateState::default(), INTERVAL);
    let sent = hammer(&mut gate, LoginOutcome::Rejected, 0, DAY_MS - 1);
    assert_eq!(sent.len(), 4, "{sent:?}");
    let hold = gate.hold(DAY_MS - 1).unwrap();
    assert!(hold.is_cap());
    assert_eq!(hold.until_ms, DAY_MS, "a day after the first");
    assert!(gate.open(DAY_MS).is_ok());
}

#[test]
fn new_passwords_are_tried_at_once_but_within_the_cap() {
    let mut gate = LoginGate::new(GateState::default(), INTERVAL);
    let mut sent = Vec::new();
    for guess in 0..6 {
        let now = guess * MIN;
        // Each guess is a new password: the gate starts from `for_new_password`.
        gate = LoginGate::new(gate.for_new_password(), INTERVAL);
        if let Ok(permit) = gate.open(now) {
            gate.record(&permit, now, LoginOutcome::Rejected);
            sent.push(now);
        }
    }
    assert_eq!(
        sent,
        vec![0, MIN, 2 * MIN, 3 * MIN],
        "four guesses, then held"
    );
    let hold = gate.hold(5 * MIN).unwrap();
    assert!(hold.is_cap() && hold.until_ms == DAY_MS, "{hold:?}");
}

#[test]
fn every_kind_of_failure_counts_in_the_row_and_a_success_ends_it() {
    let mut gate = LoginGate::new(GateState::default(), INTERVAL);
    for (i, outcome) in [
        LoginOutcome::Rejected,
        LoginOutcome::Ambiguous,
        LoginOutcome::LockedOut,
    ]
    .into_iter()
    .enumerate()
    {
        gate = LoginGate::new(gate.for_new_password(), INTERVAL);
        let now = i64::try_from(i).unwrap() * MIN;
        let permit = gate.open(now).unwrap();
        gate.record(&permit, now, outcome);
    }
    assert_eq!(gate.state().failures_in_a_row, 3);
    gate = LoginGate::new(gate.for_new_password(), INTERVAL);
    // After the lockout answer, even a new password waits its hour.
    let now = gate.next_allowed_ms(10 * MIN);
    assert!(now >= 2 * MIN + 60 * MIN);
    let permit = gate.open(now).unwrap();
    gate.record(&permit, now, LoginOutcome::Accepted);
    assert_eq!(gate.state().failures_in_a_row, 0);
    assert_eq!(gate.state().first_failure_in_a_row_ms, None);
}

#[test]
fn the_cap_survives_a_restart_and_a_wrong_clock_cannot_stretch_it() {
    let mut gate = LoginGate::new(GateState::default(), INTERVAL);
    hammer(&mut gate, LoginOutcome::Rejected, 0, DAY_MS - 1);
    let restarted = LoginGate::restore(gate.state().clone(), INTERVAL, 3 * 60 * MIN);
    assert!(restarted.hold(3 * 60 * MIN).is_some_and(|h| h.is_cap()));
    // Written by a clock a year ahead: read back, it holds at most a day.
    let mut future = gate.state().clone();
    future.first_failure_in_a_row_ms = Some(365 * DAY_MS);
    let now = 2 * DAY_MS;
    let restarted = LoginGate::restore(future, INTERVAL, now);
    assert!(restarted.next_allowed_ms(now) <= now + DAY_MS);
}

#[test]
fn a_person_can_reset_the_count() {
    let mut gate = LoginGate::new(GateState::default(), INTERVAL);
    hammer(&mut gate, LoginOutcome::Rejected, 0, DAY_MS - 1);
    gate.reset_failures();
    assert_eq!(gate.hold(5 * 60 * MIN), None);
    assert_eq!(gate.state().failures_in_a_row, 0);
}

#[test]
fn a_confirmed_passwords_ambiguous_relogins_slow_down_after_three_in_a_row() {
    let mut gate = LoginGate::new(GateState::default(), INTERVAL);
    let permit = gate.open(0).unwrap();
    gate.record(&permit, 0, LoginOutcome::Accepted);
    let sent = hammer(&mut gate, LoginOutcome::Ambiguous, 1, 6 * 60 * MIN);
    let gaps: Vec<i64> = sent.windows(2).map(|w| (w[1] - w[0]) / MIN).collect();
    // Three at the interval, then 10 min, 20 min, 40 min, then an hour each: a Share that
    // answers nothing certain for hours costs a few passwords, not twelve an hour.
    assert_eq!(&gaps[..6], &[5, 5, 10, 20, 40, 60], "{gaps:?}");
    assert!(gaps[6..].iter().all(|g| *g == 60), "{gaps:?}");
    assert!(
        !gate.hold(sent[sent.len() - 1]).is_some_and(|h| h.is_cap()),
        "not the password's fault"
    );
    // A success ends it.
    let now = gate.next_allowed_ms(6 * 60 * MIN);
    let permit = gate.open(now).unwrap();
    gate.record(&permit, now, LoginOutcome::Accepted);
    assert_eq!(gate.state().ambiguous_in_a_row, 0);
}

#[test]
fn after_the_days_hold_one_attempt_a_day_gets_out_and_a_lockout_wait_outlives_a_new_password() {
    let mut gate = LoginGate::new(GateState::default(), INTERVAL);
    hammer(&mut gate, LoginOutcome::Rejected, 0, DAY_MS - 1);
    // A day on, new passwords one after another: one gets out, then a day's hold again.
    let mut sent = Vec::new();
    for guess in 0..10 {
        let now = DAY_MS + guess * MIN;
        gate = LoginGate::new(gate.for_new_password(), INTERVAL);
        if let Ok(permit) = gate.open(now) {
            gate.record(&permit, now, LoginOutcome::LockedOut);
            sent.push(now);
        }
    }
    assert_eq!(
        sent,
        vec![DAY_MS],
        "one attempt after the day, then held again"
    );
    let hold = gate.hold(DAY_MS + 10 * MIN).unwrap();
    assert!(hold.is_cap() && hold.until_ms == 2 * DAY_MS, "{hold:?}");
    // Below the cap: a lockout answer's hour is kept when the password changes.
    let mut gate = LoginGate::new(GateState::default(), INTERVAL);
    let permit = gate.open(0).unwrap();
    gate.record(&permit, 0, LoginOutcome::LockedOut);
    let gate = LoginGate::new(gate.for_new_password(), INTERVAL);
    assert!(
        gate.next_allowed_ms(MIN) >= 60 * MIN,
        "the lockout's hour stays"
    );
}
