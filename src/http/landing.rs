//! The landing page (`/`): what a person glances at. Per account: the current glucose in mg/dL
//! and mmol/L, the trend as an arrow and in words, the reading's age, whether Share polling is
//! healthy, the range the value is in (urgent low, low, in range, high) told by a word and a
//! symbol as well as a colour, and a chart of the last three hours (36 readings) as inline SVG.
//!
//! One self-contained HTML document: no JavaScript, no external resources (the response
//! forbids them with a Content-Security-Policy), a meta refresh every minute, every label
//! escaped. It reads the same atomics and snapshots as a scrape, so it never waits on a poll.

use std::fmt::Write as _;
use std::time::Duration;

use crate::history::History;
use crate::metrics::{AccountMetrics, AccountStatus, HoldReason, Metrics, Thresholds, is_current};
use crate::share::{Reading, Trend, mg_per_dl_to_mmol_per_l};

/// The readings the chart spans: three hours at the sensor's 5-minute cadence (the span follows
/// the cadence the history shows, so an accelerated simulator draws as many readings).
pub const CHART_READINGS: i64 = 36;

/// The page's Content-Security-Policy: nothing but its own inline styles.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Where a value stands against the account's thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Band {
    /// At or below the urgent-low threshold.
    UrgentLow,
    /// At or below the low threshold.
    Low,
    /// Between low and high.
    InRange,
    /// At or above the high threshold.
    High,
}

impl Band {
    /// The band of `mg_per_dl` under `thresholds`.
    pub fn of(mg_per_dl: u16, thresholds: Thresholds) -> Band {
        if mg_per_dl <= thresholds.urgent_low {
            Band::UrgentLow
        } else if mg_per_dl <= thresholds.low {
            Band::Low
        } else if mg_per_dl >= thresholds.high {
            Band::High
        } else {
            Band::InRange
        }
    }

    /// CSS class, word and symbol: the colour is never the only sign.
    fn describe(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Band::UrgentLow => ("urgent", "URGENT LOW", "‼"),
            Band::Low => ("low", "LOW", "▼"),
            Band::InRange => ("ok", "in range", "✓"),
            Band::High => ("high", "HIGH", "▲"),
        }
    }
}

/// The trend as an arrow and in words.
pub fn trend_text(trend: Trend) -> (&'static str, &'static str) {
    match trend {
        Trend::None => ("–", "no trend"),
        Trend::DoubleUp => ("⇈", "rising fast"),
        Trend::SingleUp => ("↑", "rising"),
        Trend::FortyFiveUp => ("↗", "rising slowly"),
        Trend::Flat => ("→", "steady"),
        Trend::FortyFiveDown => ("↘", "falling slowly"),
        Trend::SingleDown => ("↓", "falling"),
        Trend::DoubleDown => ("⇊", "falling fast"),
        Trend::NotComputable => ("?", "trend unknown"),
        Trend::RateOutOfRange => ("?", "changing too fast to tell"),
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1a1a1a;background:#fafafa}\
h1{font-size:1.3rem;margin:0 0 .3rem}p.meta{margin:0 0 1rem;color:#555}\
.accounts{display:flex;flex-wrap:wrap;gap:1rem}\
.card{background:#fff;border:1px solid #ccc;border-left:.6rem solid #999;border-radius:.4rem;padding:.8rem 1rem;width:20rem}\
.card.urgent{border-left-color:#b00020;background:#fde7ea}.card.low{border-left-color:#d35400;background:#fff1e6}\
.card.ok{border-left-color:#1e8449}.card.high{border-left-color:#b7950b;background:#fef9e7}\
.name{font-weight:600;font-size:1.05rem}.value{font-size:2.4rem;font-weight:700;line-height:1.1}\
.unit{font-size:1rem;font-weight:400;color:#444}.band{font-weight:700;letter-spacing:.03em}\
.trend{font-size:1.6rem}.small{color:#555;font-size:.9rem}.bad{color:#b00020;font-weight:600}\
svg{width:100%;height:auto;margin-top:.4rem}footer{margin-top:1.5rem;color:#555;font-size:.9rem}";

/// The page for `accounts` (metrics and history in the same order).
pub fn render(
    metrics: &Metrics,
    histories: &[std::sync::Arc<History>],
    telemetry_path: &str,
) -> String {
    let now = (metrics.now_ms(), metrics.monotonic_ms());
    let mut cards = String::new();
    for (index, account) in metrics.accounts().iter().enumerate() {
        let history = histories.get(index).map(|h| h.snapshot());
        card(
            &mut cards,
            account,
            history.as_deref().map(Vec::as_slice).unwrap_or_default(),
            metrics.max_age(),
            now,
        );
    }
    if metrics.accounts().is_empty() {
        cards.push_str("<p>No account is configured for this replica.</p>");
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta http-equiv=\"refresh\" content=\"60\"><title>Dexcom Exporter</title><style>{STYLE}</style></head>\n<body>\n\
<h1>Dexcom Exporter</h1>\n<p class=\"meta\">Glucose from Dexcom Share, refreshed every minute. Version {version} · \
<a href=\"{path}\">Metrics</a> · <a href=\"/-/healthy\">Health</a> · <a href=\"/-/ready\">Readiness</a></p>\n\
<div class=\"accounts\">{cards}</div>\n\
<footer>For following along, not for treatment decisions: confirm with a meter when in doubt.</footer>\n</body></html>\n",
        version = env!("CARGO_PKG_VERSION"),
        path = escape(telemetry_path),
    )
}

fn card(
    out: &mut String,
    account: &AccountMetrics,
    history: &[Reading],
    max_age: Duration,
    (now_ms, mono_ms): (i64, i64),
) {
    let thresholds = account.thresholds();
    let name = escape(account.name());
    let latest = account.latest();
    let current = latest.filter(|l| is_current(l.age_ms(mono_ms), max_age));
    let band = current.map(|l| Band::of(l.reading.mg_per_dl, thresholds));
    let class = band.map_or("none", |b| b.describe().0);
    let _ = write!(
        out,
        "<section class=\"card {class}\" aria-label=\"{name}\"><div class=\"name\">{name}</div>"
    );
    match (current, latest) {
        (Some(l), _) => {
            let mg = l.reading.mg_per_dl;
            let (shown, mmol) = match mg {
                39 => ("below 40".to_owned(), "below 2.2".to_owned()),
                401 => ("above 400".to_owned(), "above 22.2".to_owned()),
                _ => (
                    mg.to_string(),
                    format!("{:.1}", mg_per_dl_to_mmol_per_l(mg)),
                ),
            };
            let (arrow, words) = trend_text(l.reading.trend);
            let (_, band_word, symbol) = band.unwrap_or(Band::InRange).describe();
            let _ = write!(
                out,
                "<div class=\"value\">{shown} <span class=\"unit\">mg/dL</span> <span class=\"trend\" aria-hidden=\"true\">{arrow}</span></div>\
<div class=\"unit\">{mmol} mmol/L · {words}</div>\
<div class=\"band\">{symbol} {band_word}</div>"
            );
        }
        (None, Some(l)) => {
            let _ = write!(
                out,
                "<div class=\"value\">– <span class=\"unit\">no current reading</span></div><div class=\"bad\">last reading {} ago: older than {}</div>",
                age_text(l.age_ms(mono_ms)),
                humantime::format_duration(max_age)
            );
        }
        (None, None) => {
            out.push_str("<div class=\"value\">– <span class=\"unit\">no reading yet</span></div>")
        }
    }
    if let Some(l) = current {
        let _ = write!(
            out,
            "<div class=\"small\">read {} ago</div>",
            age_text(l.age_ms(mono_ms))
        );
    }
    let status = account.status_at(mono_ms, max_age);
    let share = match status {
        AccountStatus::Ok if account.is_up() => {
            "<div class=\"small\">Share polling: healthy</div>".to_owned()
        }
        AccountStatus::Ok => format!(
            "<div class=\"bad\">Share polling failing: {}</div>",
            escape(account.last_error().map_or("error", |r| r.as_str()))
        ),
        AccountStatus::Starting => {
            "<div class=\"small\">Share: waiting for the first poll</div>".to_owned()
        }
        AccountStatus::LoginHeld => {
            let hold = account.hold_at(now_ms);
            let why = if hold == HoldReason::None {
                String::new()
            } else {
                format!(" after {}", hold.words())
            };
            format!(
                "<div class=\"bad\">No value: {}{}</div>",
                escape(status.words()),
                escape(&why)
            )
        }
        other => format!(
            "<div class=\"bad\">No value: {}</div>",
            escape(other.words())
        ),
    };
    out.push_str(&share);
    // The chart's "now" is Share's, as the newest reading's answer dates it: the host's wall
    // clock may be hours off.
    let share_now_ms = latest.map_or(now_ms, |l| {
        l.reading.timestamp_ms.saturating_add(l.age_ms(mono_ms))
    });
    chart(out, account.name(), history, thresholds, share_now_ms);
    out.push_str("</section>");
}

/// The last [`CHART_READINGS`] readings' span as an SVG line, broken where readings are missing, over the
/// account's target band; its `<title>` says what it shows for screen readers.
fn chart(out: &mut String, name: &str, history: &[Reading], thresholds: Thresholds, now_ms: i64) {
    const W: f64 = 300.0;
    const H: f64 = 100.0;
    const LOW: f64 = 40.0;
    const HIGH: f64 = 350.0;
    let cadence_ms = cadence_ms(history);
    let span_ms = (cadence_ms * CHART_READINGS) as f64;
    let start_ms = now_ms - cadence_ms * CHART_READINGS;
    let hours = span_ms / 3_600_000.0;
    let span_text = if hours >= 1.0 {
        format!("{hours:.0} hours")
    } else {
        format!("{:.0} minutes", span_ms / 60_000.0)
    };
    let x = |t: i64| ((t - start_ms) as f64 / span_ms * W).clamp(0.0, W);
    let y = |mg: f64| H - (mg.clamp(LOW, HIGH) - LOW) / (HIGH - LOW) * H;
    let mut points: Vec<&Reading> = history
        .iter()
        .filter(|r| r.timestamp_ms >= start_ms && r.timestamp_ms <= now_ms)
        .collect();
    points.reverse();
    let title = match (
        points.iter().map(|r| r.mg_per_dl).min(),
        points.iter().map(|r| r.mg_per_dl).max(),
    ) {
        (Some(min), Some(max)) => format!(
            "Glucose of {}, last {span_text}: {} readings from {min} to {max} mg/dL",
            escape(name),
            points.len()
        ),
        _ => format!("Glucose of {}, last {span_text}: no readings", escape(name)),
    };
    let (band_top, band_bottom) = (y(f64::from(thresholds.high)), y(f64::from(thresholds.low)));
    let _ = write!(
        out,
        "<svg viewBox=\"0 0 {W} {H}\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\"><title>{title}</title>\
<rect x=\"0\" y=\"0\" width=\"{W}\" height=\"{H}\" fill=\"#f4f4f4\"/>\
<rect x=\"0\" y=\"{band_top:.1}\" width=\"{W}\" height=\"{:.1}\" fill=\"#d5f5e3\"/>\
<line x1=\"0\" x2=\"{W}\" y1=\"{ul:.1}\" y2=\"{ul:.1}\" stroke=\"#b00020\" stroke-dasharray=\"3 2\" stroke-width=\"0.6\"/>\
<g font-size=\"6\" fill=\"#555\" text-anchor=\"end\" aria-hidden=\"true\"><text x=\"{lx}\" y=\"{:.1}\">{}</text><text x=\"{lx}\" y=\"{:.1}\">{}</text></g>",
        band_bottom - band_top,
        band_top + 6.0,
        thresholds.high,
        band_bottom - 1.5,
        thresholds.low,
        ul = y(f64::from(thresholds.urgent_low)),
        lx = W - 2.0,
    );
    // Readings more than three intervals apart are not joined: a gap shows as a gap.
    let mut segment = String::new();
    let mut previous: Option<i64> = None;
    let flush = |segment: &mut String, out: &mut String| {
        if segment.contains(' ') {
            let _ = write!(
                out,
                "<polyline fill=\"none\" stroke=\"#1a1a1a\" stroke-width=\"1.2\" points=\"{}\"/>",
                segment.trim()
            );
        } else if !segment.is_empty() {
            let (cx, cy) = segment.trim().split_once(',').unwrap_or(("0", "0"));
            let _ = write!(
                out,
                "<circle cx=\"{cx}\" cy=\"{cy}\" r=\"1.2\" fill=\"#1a1a1a\"/>"
            );
        }
        segment.clear();
    };
    for reading in points {
        if previous.is_some_and(|p| reading.timestamp_ms - p > 3 * cadence_ms) {
            flush(&mut segment, out);
        }
        let _ = write!(
            segment,
            "{:.1},{:.1} ",
            x(reading.timestamp_ms),
            y(f64::from(reading.mg_per_dl))
        );
        previous = Some(reading.timestamp_ms);
    }
    flush(&mut segment, out);
    out.push_str("</svg>");
}

/// The sensor cadence the history shows: the median gap between its newest readings, 5 minutes
/// when there are too few.
fn cadence_ms(history: &[Reading]) -> i64 {
    let mut gaps: Vec<i64> = history
        .windows(2)
        .take(12)
        .map(|w| w[0].timestamp_ms - w[1].timestamp_ms)
        .filter(|g| *g > 0)
        .collect();
    if gaps.len() < 3 {
        return 5 * 60 * 1000;
    }
    gaps.sort_unstable();
    gaps[gaps.len() / 2]
}

fn age_text(age_ms: i64) -> String {
    let seconds = u64::try_from(age_ms / 1000).unwrap_or(0);
    let rounded = if seconds >= 120 {
        seconds / 60 * 60
    } else {
        seconds
    };
    humantime::format_duration(Duration::from_secs(rounded)).to_string()
}

/// Text safe in HTML and SVG content and attribute values.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_follow_the_thresholds() {
        let t = Thresholds::default();
        assert_eq!(Band::of(55, t), Band::UrgentLow);
        assert_eq!(Band::of(56, t), Band::Low);
        assert_eq!(Band::of(70, t), Band::Low);
        assert_eq!(Band::of(71, t), Band::InRange);
        assert_eq!(Band::of(250, t), Band::High);
        for band in [Band::UrgentLow, Band::Low, Band::InRange, Band::High] {
            let (_, word, symbol) = band.describe();
            assert!(!word.is_empty() && !symbol.is_empty(), "not colour alone");
        }
    }

    fn page_with(name: &str, mg_per_dl: u16, trend: Trend) -> String {
        use crate::clock::{Clock, ManualClock};
        use crate::metrics::LatestReading;
        let clock = ManualClock::now_system();
        let metrics = Metrics::new(
            [(name.to_owned(), Thresholds::default())],
            Duration::from_secs(1200),
            clock.clone(),
        );
        let now = clock.now_ms();
        let readings: Vec<Reading> = (0..40)
            .map(|i| Reading {
                timestamp_ms: now - 60_000 - i * 300_000,
                utc_offset_minutes: None,
                mg_per_dl: if i == 0 { mg_per_dl } else { 120 },
                trend,
            })
            .filter(|r| !(10..14).contains(&((now - r.timestamp_ms) / 300_000)))
            .collect();
        let history = std::sync::Arc::new(History::new(name, Default::default()));
        history.merge(&readings, now);
        let account = &metrics.accounts()[0];
        account.set_latest(LatestReading {
            reading: readings[0],
            delta_mg_per_dl: None,
            arrival: crate::metrics::Arrival {
                share_ms: now,
                mono_ms: clock.monotonic_ms(),
            },
        });
        account.poll_succeeded(clock.now());
        render(&metrics, &[history], "/metrics")
    }

    #[test]
    fn an_urgent_low_reads_as_one_in_words_symbol_colour_and_both_units() {
        let page = page_with("kid", 50, Trend::SingleDown);
        assert!(page.contains("class=\"card urgent\""), "{page}");
        assert!(page.contains("‼ URGENT LOW"));
        assert!(page.contains(">50 <span class=\"unit\">mg/dL"));
        assert!(page.contains("2.8 mmol/L · falling"));
        assert!(page.contains("↓"));
        assert!(page.contains("Share polling: healthy"));
        assert!(page.contains("read 1m ago"), "{page}");
        // The chart: the 36 readings of three hours but the 4 missing, broken at the gap.
        assert!(
            page.contains("last 3 hours: 32 readings from 50 to 120 mg/dL"),
            "{page}"
        );
        assert_eq!(
            page.matches("<polyline").count(),
            2,
            "one line each side of the gap"
        );
        assert!(!page.contains("<script") && !page.contains("src="));
    }

    #[test]
    fn an_account_without_a_value_says_why_in_words() {
        use crate::clock::{Clock, ManualClock};
        let clock = ManualClock::now_system();
        let metrics = Metrics::new(
            [
                ("held".to_owned(), Thresholds::default()),
                ("off".to_owned(), Thresholds::default()),
            ],
            Duration::from_secs(1200),
            clock.clone(),
        );
        let now = clock.now_ms();
        let held = &metrics.accounts()[0];
        held.set_polled_status(AccountStatus::LoginHeld);
        held.set_hold(Some((HoldReason::AuthFailed, now + 29 * 60_000)));
        let off = &metrics.accounts()[1];
        off.set_polled_status(AccountStatus::NoReadings);
        off.poll_succeeded(clock.now());
        let histories = [
            std::sync::Arc::new(History::new("held", Default::default())),
            std::sync::Arc::new(History::new("off", Default::default())),
        ];
        let page = render(&metrics, &histories, "/metrics");
        assert!(
            page.contains("No value: login held back to protect the Dexcom account from a lockout after Share rejected the password"),
            "{page}"
        );
        assert!(
            page.contains(
                "No value: Share has no readings: check that sharing is on and a follower is set up"
            ),
            "{page}"
        );
    }

    #[test]
    fn labels_are_escaped_everywhere_and_sentinels_are_words() {
        let page = page_with(
            "<img src=x onerror=alert(1)>&\"",
            401,
            Trend::RateOutOfRange,
        );
        assert!(!page.contains("<img"), "{page}");
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;&amp;&quot;"));
        assert!(page.contains("above 400 <span class=\"unit\">mg/dL"));
        assert!(page.contains("▲ HIGH"));
        assert!(page.contains("changing too fast to tell"));
    }

    #[test]
    fn escapes_everything_that_could_open_markup() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }
}
