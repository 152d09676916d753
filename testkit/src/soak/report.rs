//! What the fault soak measured, and how it is printed.

/// What the soak measured.
#[derive(Debug, Default)]
pub struct SoakReport {
    pub simulated_hours: f64,
    pub wall_seconds: f64,
    pub readings_served: usize,
    pub readings_missed: usize,
    pub readings_missed_outside_disturbances: usize,
    /// Readings the driver did not look for in time (no scrape while each was the newest):
    /// neither seen nor missed.
    pub readings_unobserved: usize,
    pub faults_injected: usize,
    pub session_expiries: usize,
    pub relogins: u64,
    pub restarts: usize,
    pub wrong_password_hours: f64,
    pub password_attempts_wrong: usize,
    pub min_minutes_between_wrong_attempts: Option<f64>,
    pub max_wrong_attempts_in_24h: usize,
    pub lockouts: u64,
    /// Times the host's wall clock was stepped (an hour or a day, either way).
    pub host_clock_steps: usize,
    /// Simulated hours the state directory could not be written (`chattr +i`, as root).
    pub state_read_only_hours: f64,
    /// Password-bearing requests Share received while the state directory could not be
    /// written: a login that cannot be counted must not be made.
    pub passwords_while_read_only: u64,
    /// Scrapes that showed a value whose reading was older than `--glucose.max-age` by Share's
    /// clock (beyond the scrape's own latency).
    pub values_older_than_max_age: usize,
    /// The largest difference between the age shown and the reading's true age (by Share's
    /// clock, between the moment a scrape was asked for and answered), in seconds.
    pub max_age_error_seconds: f64,
    pub rss_start_kib: u64,
    pub rss_end_kib: u64,
    pub panics: u64,
    pub unexpected_error_lines: Vec<String>,
    /// For each reading missed outside disturbances: minutes after start it became visible,
    /// and the upload delay in seconds.
    pub missed_outside: Vec<(f64, f64)>,
}

impl std::fmt::Display for SoakReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "simulated {:.1} h in {:.1} s of wall time",
            self.simulated_hours, self.wall_seconds
        )?;
        writeln!(
            f,
            "readings served by Share: {}; never on /metrics: {} ({} outside injected disturbances); not looked for in time by the driver: {}",
            self.readings_served,
            self.readings_missed,
            self.readings_missed_outside_disturbances,
            self.readings_unobserved
        )?;
        writeln!(
            f,
            "faults injected: {}; session expiries: {}; re-logins: {}; abrupt restarts: {}",
            self.faults_injected, self.session_expiries, self.relogins, self.restarts
        )?;
        writeln!(
            f,
            "wrong-password phase: {:.1} h, {} password attempts, closest two {} min apart, at most {} in 24 h; Share lockouts: {}",
            self.wrong_password_hours,
            self.password_attempts_wrong,
            self.min_minutes_between_wrong_attempts
                .map_or("-".to_owned(), |m| format!("{m:.1}")),
            self.max_wrong_attempts_in_24h,
            self.lockouts
        )?;
        writeln!(
            f,
            "host clock steps: {}; values shown older than --glucose.max-age: {}; largest error of the age shown: {:.1} s",
            self.host_clock_steps, self.values_older_than_max_age, self.max_age_error_seconds
        )?;
        writeln!(
            f,
            "state directory read-only: {:.1} h, password-bearing requests meanwhile: {}",
            self.state_read_only_hours, self.passwords_while_read_only
        )?;
        writeln!(
            f,
            "resident memory: {} KiB at start, {} KiB at end",
            self.rss_start_kib, self.rss_end_kib
        )?;
        write!(
            f,
            "panics: {}; unexpected ERROR lines: {}",
            self.panics,
            self.unexpected_error_lines.len()
        )?;
        for (minute, delay) in &self.missed_outside {
            write!(
                f,
                "\n  missed outside disturbances: visible at minute {minute:.1}, uploaded {delay:.0} s after its sensor time"
            )?;
        }
        Ok(())
    }
}
