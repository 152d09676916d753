//! The Dexcom trend arrow: its numeric codes (0-9, as the metric serves them) and the names
//! Share writes, read in any case or as an integer.

use std::fmt;

/// The Dexcom trend arrow, with Dexcom's numeric codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum Trend {
    /// No trend (code 0).
    #[default]
    None = 0,
    /// Rising quickly, more than 3 mg/dL per minute (1).
    DoubleUp = 1,
    /// Rising, 2–3 mg/dL per minute (2).
    SingleUp = 2,
    /// Rising slightly, 1–2 mg/dL per minute (3).
    FortyFiveUp = 3,
    /// Steady (4).
    Flat = 4,
    /// Falling slightly (5).
    FortyFiveDown = 5,
    /// Falling (6).
    SingleDown = 6,
    /// Falling quickly (7).
    DoubleDown = 7,
    /// The sensor could not compute a trend (8).
    NotComputable = 8,
    /// The rate is out of range (9).
    RateOutOfRange = 9,
}

impl Trend {
    /// Every trend, in code order.
    pub const ALL: [Trend; 10] = [
        Trend::None,
        Trend::DoubleUp,
        Trend::SingleUp,
        Trend::FortyFiveUp,
        Trend::Flat,
        Trend::FortyFiveDown,
        Trend::SingleDown,
        Trend::DoubleDown,
        Trend::NotComputable,
        Trend::RateOutOfRange,
    ];

    /// Dexcom's numeric code, 0–9.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The trend for a numeric code, if it is 0–9.
    pub fn from_code(code: i64) -> Option<Trend> {
        usize::try_from(code)
            .ok()
            .and_then(|i| Trend::ALL.get(i).copied())
    }

    /// The name Share uses on the wire (`"FortyFiveUp"`).
    pub fn wire_name(self) -> &'static str {
        match self {
            Trend::None => "None",
            Trend::DoubleUp => "DoubleUp",
            Trend::SingleUp => "SingleUp",
            Trend::FortyFiveUp => "FortyFiveUp",
            Trend::Flat => "Flat",
            Trend::FortyFiveDown => "FortyFiveDown",
            Trend::SingleDown => "SingleDown",
            Trend::DoubleDown => "DoubleDown",
            Trend::NotComputable => "NotComputable",
            Trend::RateOutOfRange => "RateOutOfRange",
        }
    }

    /// Parses a wire name case-insensitively, ignoring spaces and underscores
    /// (`"NOT COMPUTABLE"`, `"notcomputable"`); the empty string is `None`.
    pub fn from_name(name: &str) -> Option<Trend> {
        let squashed: String = name
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '_')
            .collect();
        if squashed.is_empty() {
            return Some(Trend::None);
        }
        Trend::ALL
            .into_iter()
            .find(|t| t.wire_name().eq_ignore_ascii_case(&squashed))
    }
}

impl fmt::Display for Trend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.wire_name())
    }
}
