//! Share's date format: `Date(ms)`, `Date(ms±HHMM)` and the pre-2021 WCF form `/Date(ms)/`.
//! Pure: the instant in milliseconds and the display offset, nothing else.

/// A Share date: milliseconds since the epoch and an optional `±HHMM` offset in minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareDate {
    /// Milliseconds since the Unix epoch.
    pub millis: i64,
    /// The offset suffix in minutes, if present.
    pub offset_minutes: Option<i32>,
}

/// Parses `Date(ms)`, `Date(ms±HHMM)` and the old `/Date(ms)/` form.
pub fn parse_share_date(text: &str) -> Option<ShareDate> {
    let text = text.trim();
    let text = text.strip_prefix('/').unwrap_or(text);
    let text = text.strip_suffix('/').unwrap_or(text);
    let inner = text.strip_prefix("Date(")?.strip_suffix(')')?;
    // The sign of the epoch is at index 0; an offset sign can only come after a digit.
    let split = inner
        .char_indices()
        .skip(1)
        .find(|(_, c)| *c == '+' || *c == '-')
        .map(|(i, _)| i);
    let (millis_text, offset_text) = match split {
        Some(i) => (&inner[..i], Some(&inner[i..])),
        None => (inner, None),
    };
    let millis: i64 = millis_text.parse().ok()?;
    let offset_minutes = match offset_text {
        None => None,
        Some(offset) => Some(parse_offset(offset)?),
    };
    Some(ShareDate {
        millis,
        offset_minutes,
    })
}

fn parse_offset(offset: &str) -> Option<i32> {
    let (sign, digits) = offset.split_at(1);
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i32 = digits[..2].parse().ok()?;
    let minutes: i32 = digits[2..].parse().ok()?;
    if hours > 14 || minutes > 59 {
        return None;
    }
    let total = hours * 60 + minutes;
    Some(if sign == "-" { -total } else { total })
}
