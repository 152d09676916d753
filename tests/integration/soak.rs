//! The fault soak's short version: one simulated day at 720 times the wall clock (two
//! minutes, so a busy CI machine's scheduling jitter stays small in simulated time), with its
//! goals asserted, the host's clock stepped an hour and a day each way among the faults, and
//! an hour in which the state directory cannot be written (as root: `chattr +i`). `cargo bench --bench soak` runs the long one and prints the same
//! figures.

use dexcom_testkit::soak::{SoakOptions, run};

#[test]
fn one_simulated_day_of_faults_locks_nothing_and_loses_nothing() {
    let report = run(SoakOptions {
        days: 1.0,
        speedup: 720.0,
        seed: 2026,
    });
    println!("{report}");
    assert!(report.simulated_hours >= 24.0, "{report}");
    assert_eq!(report.panics, 0, "{report}");
    assert!(
        report.unexpected_error_lines.is_empty(),
        "{report}\n{:#?}",
        report.unexpected_error_lines
    );
    assert_eq!(report.lockouts, 0, "{report}");
    // The host's clock stepped an hour ahead and back, a day behind and back: no value older
    // than --glucose.max-age shown, and every age shown true (within a busy machine's scrape
    // latency in simulated time, where an hour or a day off would be plain).
    assert_eq!(report.host_clock_steps, 4, "{report}");
    assert_eq!(report.values_older_than_max_age, 0, "{report}");
    assert!(report.max_age_error_seconds <= 300.0, "{report}");
    assert!(
        report.password_attempts_wrong >= 2,
        "the phase was exercised: {report}"
    );
    assert!(
        report.min_minutes_between_wrong_attempts >= Some(29.0),
        "{report}"
    );
    // At most four failures in a row reach Share, whatever the restarts.
    assert!(report.max_wrong_attempts_in_24h <= 4, "{report}");
    // An hour the state directory cannot be written, with Share ending the session at its
    // start: no password goes until the attempt can be counted.
    assert!(report.state_read_only_hours >= 0.9, "{report}");
    assert_eq!(report.passwords_while_read_only, 0, "{report}");
    // At most one reading in a day missed outside a disturbance: on a CI machine running the
    // whole suite beside it, 0.4 s of wall time is all a reading has at 720x, and such a miss
    // has been seen only with the machine loaded (load 9 to 14); the figure is printed.
    assert!(report.readings_missed_outside_disturbances <= 1, "{report}");
    // The driver may fail to look while a reading is the newest on a busy machine (0.4 s of
    // wall time at 720×); that must stay rare, or the count above would mean little.
    assert!(
        report.readings_unobserved * 20 <= report.readings_served,
        "{report}"
    );
    // A day holds 288 sensor times; the injected sensor gaps take some away.
    assert!(report.readings_served >= 200, "{report}");
    assert!(
        report.session_expiries >= 1 && report.restarts >= 1,
        "{report}"
    );
}
