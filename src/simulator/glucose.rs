//! A seeded, stateless glucose generator.
//!
//! Every value is a pure function of `(seed, reading index)`, so the simulator needs no stored
//! history (24 hours of it exist from the first second), tests can recompute what was served,
//! and any cadence works: a simulated day is always 288 readings, so an accelerated cadence
//! replays the same realistic day faster instead of producing unrealistic slopes.
//!
//! The curve is a sum of a basal drift, the dawn phenomenon, three meals a day whose sizes vary
//! (sometimes a missed bolus that ends high), the correction dips after them, occasional
//! overnight lows, and smooth noise.

use crate::share::Trend;

/// Readings in one simulated day.
pub const READINGS_PER_DAY: i64 = 288;
/// Simulated minutes between readings (the sensor's real cadence).
const MINUTES_PER_READING: f64 = 5.0;

/// The character of an account's glucose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GlucoseProfile {
    /// Mostly in range, with meals, an occasional low and an occasional high.
    #[default]
    Typical,
    /// Like typical, but every night dips well below 55 mg/dL.
    OvernightLow,
    /// Runs high: bigger meals, rare lows.
    RunsHigh,
    /// Always exactly this many mg/dL, trend flat: for tests that need a known value.
    #[serde(skip)]
    Constant(u16),
}

/// A generated reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeneratedReading {
    /// mg/dL with the sentinels 39 (below 40) and 401 (above 400).
    pub mg_per_dl: u16,
    /// The arrow derived from the slope.
    pub trend: Trend,
}

/// The generator for one account.
#[derive(Debug, Clone, Copy)]
pub struct GlucoseModel {
    seed: u64,
    profile: GlucoseProfile,
    /// Shift from reading index to local reading index, so meals happen at local times.
    local_shift: i64,
}

impl GlucoseModel {
    /// A model with its own seed and profile. `local_shift` (in readings) maps a reading index
    /// to the account's local day, so meals and nights fall at local times.
    pub fn new(seed: u64, profile: GlucoseProfile, local_shift: i64) -> Self {
        GlucoseModel {
            seed,
            profile,
            local_shift,
        }
    }

    /// The reading with sensor index `k`.
    pub fn reading(&self, k: i64) -> GeneratedReading {
        if let GlucoseProfile::Constant(value) = self.profile {
            return GeneratedReading {
                mg_per_dl: value,
                trend: Trend::Flat,
            };
        }
        let now = self.level(k);
        let mg_per_dl = if now < 40.0 {
            39
        } else if now > 400.0 {
            401
        } else {
            now.round() as u16
        };
        let per_minute = (now - self.level(k - 3)) / (3.0 * MINUTES_PER_READING);
        let trend = if unit(self.seed, k, 7) < 0.004 {
            Trend::NotComputable
        } else {
            trend_for_rate(per_minute)
        };
        GeneratedReading { mg_per_dl, trend }
    }

    /// The unclamped glucose level in mg/dL at reading index `k`.
    fn level(&self, k: i64) -> f64 {
        let local = k + self.local_shift;
        let minute = local as f64 * MINUTES_PER_READING;
        let day = local.div_euclid(READINGS_PER_DAY);
        let minute_of_day = local.rem_euclid(READINGS_PER_DAY) as f64 * MINUTES_PER_READING;
        let s = self.seed;

        let mut level = match self.profile {
            GlucoseProfile::RunsHigh => 150.0,
            _ => 112.0,
        };
        level +=
            12.0 * (std::f64::consts::TAU * minute_of_day / 1440.0 + unit(s, day, 1) * 6.0).sin();
        level += 25.0 * bump(minute_of_day, 390.0, 70.0);

        // Meals of today and yesterday (dinner's tail crosses midnight).
        for d in [day - 1, day] {
            let day_start = d as f64 * 1440.0;
            for (i, usual) in [450.0, 750.0, 1140.0].into_iter().enumerate() {
                let salt = 10 + i as i64;
                let start = day_start + usual + (unit(s, d, salt) - 0.5) * 60.0;
                let mut size = 35.0 + unit(s, d, salt + 10) * 90.0;
                if self.profile == GlucoseProfile::RunsHigh {
                    size *= 1.5;
                }
                let missed_bolus = unit(s, d, salt + 20) < 0.08;
                if missed_bolus {
                    size *= 2.2;
                }
                let t = minute - start;
                if t > 0.0 {
                    // A gamma-shaped absorption curve: gentle onset, peak at `tau`.
                    let tau = if missed_bolus { 120.0 } else { 65.0 };
                    let x = t / tau;
                    level += size * x * x * (2.0 * (1.0 - x)).exp();
                    // Insulin sometimes overshoots: a dip a few hours after the meal.
                    if unit(s, d, salt + 30) < 0.25 {
                        level -= 0.6 * size * bump(t, 210.0, 35.0);
                    }
                }
            }
        }

        level += smooth_noise(s, k, 6, 11.0) + (unit(s, k, 8) - 0.5) * 2.0;

        // A night low pulls the level towards a floor rather than subtracting a fixed depth,
        // so its bottom is predictable whatever the day's meals and noise did.
        let night_low_floor = match self.profile {
            GlucoseProfile::OvernightLow => Some(34.0 + unit(s, day, 40) * 14.0),
            GlucoseProfile::Typical if unit(s, day, 41) < 0.18 => {
                Some(50.0 + unit(s, day, 42) * 20.0)
            }
            _ => None,
        };
        if let Some(floor) = night_low_floor {
            let centre = 150.0 + unit(s, day, 43) * 100.0;
            let pull = bump(minute_of_day, centre, 40.0);
            level = level * (1.0 - pull) + floor * pull;
        }
        level
    }
}

/// Dexcom's arrows by rate of change in mg/dL per minute.
pub fn trend_for_rate(per_minute: f64) -> Trend {
    match per_minute {
        r if r <= -3.0 => Trend::DoubleDown,
        r if r <= -2.0 => Trend::SingleDown,
        r if r <= -1.0 => Trend::FortyFiveDown,
        r if r < 1.0 => Trend::Flat,
        r if r < 2.0 => Trend::FortyFiveUp,
        r if r < 3.0 => Trend::SingleUp,
        _ => Trend::DoubleUp,
    }
}

fn bump(x: f64, centre: f64, width: f64) -> f64 {
    let z = (x - centre) / width;
    (-0.5 * z * z).exp()
}

/// Value noise: random levels every `step` readings, smoothly interpolated.
fn smooth_noise(seed: u64, k: i64, step: i64, amplitude: f64) -> f64 {
    let cell = k.div_euclid(step);
    let frac = k.rem_euclid(step) as f64 / step as f64;
    let eased = frac * frac * (3.0 - 2.0 * frac);
    let a = unit(seed, cell, 3) - 0.5;
    let b = unit(seed, cell + 1, 3) - 0.5;
    2.0 * amplitude * (a + (b - a) * eased)
}

/// A uniform number in [0, 1) from `(seed, index, salt)`.
pub fn unit(seed: u64, index: i64, salt: i64) -> f64 {
    let h = mix(seed ^ mix(index as u64 ^ mix(salt as u64)));
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// splitmix64's finaliser: a cheap, well-distributed 64-bit hash.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn week(profile: GlucoseProfile) -> Vec<GeneratedReading> {
        let model = GlucoseModel::new(42, profile, -60);
        (0..7 * READINGS_PER_DAY)
            .map(|k| model.reading(k))
            .collect()
    }

    #[test]
    fn deterministic_for_a_seed() {
        let a = GlucoseModel::new(7, GlucoseProfile::Typical, 0);
        let b = GlucoseModel::new(7, GlucoseProfile::Typical, 0);
        let c = GlucoseModel::new(8, GlucoseProfile::Typical, 0);
        assert!((0..300).all(|k| a.reading(k) == b.reading(k)));
        assert!((0..300).any(|k| a.reading(k) != c.reading(k)));
    }

    #[test]
    fn a_typical_week_is_mostly_in_range_with_excursions() {
        let readings = week(GlucoseProfile::Typical);
        let in_range = readings
            .iter()
            .filter(|r| (70..=180).contains(&r.mg_per_dl))
            .count();
        let fraction = in_range as f64 / readings.len() as f64;
        assert!((0.5..0.95).contains(&fraction), "time in range {fraction}");
        assert!(readings.iter().any(|r| r.mg_per_dl > 180), "some highs");
        assert!(readings.iter().all(|r| (39..=401).contains(&r.mg_per_dl)));
    }

    #[test]
    fn consecutive_readings_change_plausibly() {
        let readings = week(GlucoseProfile::Typical);
        let worst = readings
            .windows(2)
            .map(|w| (i32::from(w[1].mg_per_dl) - i32::from(w[0].mg_per_dl)).abs())
            .max()
            .unwrap();
        assert!(worst <= 25, "largest 5-minute step {worst} mg/dL");
        let trends: std::collections::HashSet<_> = readings.iter().map(|r| r.trend).collect();
        assert!(
            trends.contains(&Trend::Flat) && trends.len() >= 5,
            "{trends:?}"
        );
    }

    #[test]
    fn overnight_low_profile_goes_urgently_low_every_night() {
        let readings = week(GlucoseProfile::OvernightLow);
        for day in readings.chunks(READINGS_PER_DAY as usize) {
            assert!(
                day.iter().any(|r| r.mg_per_dl < 55),
                "a night without an urgent low"
            );
        }
    }

    #[test]
    fn sentinels_appear_at_the_extremes() {
        assert_eq!(trend_for_rate(-3.5), Trend::DoubleDown);
        assert_eq!(trend_for_rate(0.2), Trend::Flat);
        assert_eq!(trend_for_rate(2.5), Trend::SingleUp);
        let mut found_low = false;
        let mut found_high = false;
        for seed in 0..40 {
            let low = GlucoseModel::new(seed, GlucoseProfile::OvernightLow, 0);
            let high = GlucoseModel::new(seed, GlucoseProfile::RunsHigh, 0);
            found_low |= (0..2 * READINGS_PER_DAY).any(|k| low.reading(k).mg_per_dl == 39);
            found_high |= (0..4 * READINGS_PER_DAY).any(|k| high.reading(k).mg_per_dl == 401);
        }
        assert!(found_low && found_high, "low {found_low} high {found_high}");
    }
}
