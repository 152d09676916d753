//! The landing page (`/`): what a person glances at. Per account: the current glucose in mg/dL
//! and mmol/L, the trend as an arrow and in words, the reading's age, whether the connection to
//! Dexcom works, where the value stands told by a word and a symbol as well as a colour, and a
//! chart of the last three hours (36 readings) as inline SVG with a time axis.
//!
//! "In range" means one thing here, as in the recording rules and Grafana's time in range: the
//! standard target range, 70–180 mg/dL. The account's alert thresholds are a different thing
//! (when a phone rings) and are shown as such: lines on the chart, and a line on the card when
//! the value is past one. `--demo` pages say, on the page and on every card, that they are
//! simulated.
//!
//! One self-contained HTML document: no JavaScript, no external resources (the response
//! forbids them with a Content-Security-Policy), a meta refresh every minute, every label
//! escaped. It reads the same atomics and snapshots as a scrape, so it never waits on a poll.

use std::fmt::Write as _;
use std::time::Duration;

use super::chart::{TARGET_RANGE, chart};
use crate::history::History;
use crate::metrics::{AccountMetrics, AccountStatus, HoldReason, Metrics, Thresholds, is_current};
use crate::share::{Reading, Trend, mg_per_dl_to_mmol_per_l};

/// The page's Content-Security-Policy: nothing but its own inline styles.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Where a value stands: against the target range, and the account's urgent-low alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Band {
    /// At or below the account's urgent-low alert threshold: the one that pages at once.
    UrgentLow,
    /// Below the target range.
    Low,
    /// In the target range, 70–180 mg/dL.
    InRange,
    /// Above the target range.
    High,
}

impl Band {
    /// The band of `mg_per_dl` under `thresholds`.
    pub fn of(mg_per_dl: u16, thresholds: Thresholds) -> Band {
        let (low, high) = TARGET_RANGE;
        if mg_per_dl <= thresholds.urgent_low {
            Band::UrgentLow
        } else if mg_per_dl < low {
            Band::Low
        } else if mg_per_dl > high {
            Band::High
        } else {
            Band::InRange
        }
    }

    /// CSS class, word and symbol: the colour is never the only sign.
    fn describe(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Band::UrgentLow => ("urgent", "URGENT LOW", "‼"),
            Band::Low => ("low", "below range", "▼"),
            Band::InRange => ("ok", "in range", "✓"),
            Band::High => ("high", "above range", "▲"),
        }
    }
}

/// The alert a value is past, in words, when it is past one: the account's thresholds, which
/// decide when a phone rings, told apart from the target range.
fn alert_text(mg_per_dl: u16, thresholds: Thresholds) -> Option<String> {
    if mg_per_dl <= thresholds.urgent_low {
        Some(format!(
            "urgent-low alert: at or below {} mg/dL",
            thresholds.urgent_low
        ))
    } else if mg_per_dl <= thresholds.low {
        Some(format!("low alert: at or below {} mg/dL", thresholds.low))
    } else if mg_per_dl >= thresholds.high {
        Some(format!("high alert: at or above {} mg/dL", thresholds.high))
    } else {
        None
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
.alert{font-weight:600}.tag{font-size:.75rem;font-weight:600;color:#6c3483;border:1px solid #6c3483;border-radius:.3rem;padding:0 .3rem;margin-left:.4rem}\
p.simulated{background:#f4ecf7;border:1px solid #6c3483;border-radius:.4rem;padding:.5rem .8rem}\
svg{width:100%;height:auto;margin-top:.4rem}footer{margin-top:1.5rem;color:#555;font-size:.9rem}";

/// The page for `accounts` (metrics and history in the same order); `simulated` when the
/// accounts are `--demo`'s.
pub fn render(
    metrics: &Metrics,
    histories: &[std::sync::Arc<History>],
    telemetry_path: &str,
    simulated: bool,
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
            simulated,
        );
    }
    if metrics.accounts().is_empty() {
        cards.push_str("<p>No account is configured for this replica.</p>");
    }
    let (title, notice) = if simulated {
        (
            "Dexcom Exporter (simulated)",
            "<p class=\"simulated\"><strong>Simulated</strong>: these people and their readings come from \
the built-in Share simulator (<code>--demo</code>), not from Dexcom.</p>\n",
        )
    } else {
        ("Dexcom Exporter", "")
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta http-equiv=\"refresh\" content=\"60\"><title>{title}</title><style>{STYLE}</style></head>\n<body>\n\
<h1>{title}</h1>\n{notice}<p class=\"meta\">Glucose from Dexcom Share, refreshed every minute. \
In range means 70–180 mg/dL; alerts ring at each person's own thresholds. Version {version} · \
<a href=\"{path}\">Metrics (for Prometheus)</a> · <a href=\"/-/healthy\">Running?</a> · \
<a href=\"/-/ready\">Every account read once?</a></p>\n\
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
    simulated: bool,
) {
    let thresholds = account.thresholds();
    let name = escape(account.name());
    let tag = if simulated {
        "<span class=\"tag\">simulated</span>"
    } else {
        ""
    };
    let latest = account.latest();
    let current = latest.filter(|l| is_current(l.age_ms(mono_ms), max_age));
    let band = current.map(|l| Band::of(l.reading.mg_per_dl, thresholds));
    let class = band.map_or("none", |b| b.describe().0);
    let _ = write!(
        out,
        "<section class=\"card {class}\" aria-label=\"{name}\"><div class=\"name\">{name}{tag}</div>"
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
            let (low, high) = TARGET_RANGE;
            let _ = write!(
                out,
                "<div class=\"value\">{shown} <span class=\"unit\">mg/dL</span> <span class=\"trend\" aria-hidden=\"true\">{arrow}</span></div>\
<div class=\"unit\">{mmol} mmol/L · {words}</div>\
<div class=\"band\">{symbol} {band_word} <span class=\"small\">({low}–{high})</span></div>"
            );
            if let Some(alert) = alert_text(mg, thresholds) {
                let _ = write!(out, "<div class=\"alert\">{alert}</div>");
            }
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
            "<div class=\"small\">Dexcom connection: working</div>".to_owned()
        }
        AccountStatus::Ok => format!(
            "<div class=\"bad\">Dexcom connection failing: {}</div>",
            escape(account.last_error().map_or("error", |r| r.as_str()))
        ),
        AccountStatus::Starting => {
            "<div class=\"small\">Dexcom: waiting for the first reading</div>".to_owned()
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
    chart(out, &name, history, thresholds, share_now_ms);
    out.push_str("</section>");
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
    fn in_range_is_the_standard_band_and_the_alerts_are_told_apart() {
        let t = Thresholds::default();
        assert_eq!(Band::of(55, t), Band::UrgentLow);
        assert_eq!(Band::of(56, t), Band::Low);
        assert_eq!(Band::of(69, t), Band::Low);
        assert_eq!(Band::of(70, t), Band::InRange);
        assert_eq!(Band::of(180, t), Band::InRange);
        assert_eq!(Band::of(181, t), Band::High);
        assert_eq!(Band::of(250, t), Band::High);
        // An account's own low alert at 80 does not move the range: 75 is in range, and past
        // that alert, and the page says both.
        let kid = Thresholds {
            urgent_low: 60,
            low: 80,
            high: 220,
        };
        assert_eq!(Band::of(75, kid), Band::InRange);
        assert_eq!(
            alert_text(75, kid).as_deref(),
            Some("low alert: at or below 80 mg/dL")
        );
        assert_eq!(alert_text(120, kid), None);
        assert_eq!(
            alert_text(230, kid).as_deref(),
            Some("high alert: at or above 220 mg/dL")
        );
        for band in [Band::UrgentLow, Band::Low, Band::InRange, Band::High] {
            let (_, word, symbol) = band.describe();
            assert!(!word.is_empty() && !symbol.is_empty(), "not colour alone");
        }
    }

    fn page_with(name: &str, mg_per_dl: u16, trend: Trend, simulated: bool) -> String {
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
        render(&metrics, &[history], "/metrics", simulated)
    }

    #[test]
    fn an_urgent_low_reads_as_one_in_words_symbol_colour_and_both_units() {
        let page = page_with("kid", 50, Trend::SingleDown, false);
        assert!(page.contains("class=\"card urgent\""), "{page}");
        assert!(page.contains("‼ URGENT LOW"));
        assert!(
            page.contains("urgent-low alert: at or below 55 mg/dL"),
            "{page}"
        );
        assert!(page.contains(">50 <span class=\"unit\">mg/dL"));
        assert!(page.contains("2.8 mmol/L · falling"));
        assert!(page.contains("↓"));
        assert!(page.contains("Dexcom connection: working"));
        assert!(page.contains("read 1m ago"), "{page}");
        // Words a parent uses, and a page that is not the demo does not say simulated.
        for gone in [
            "Share polling",
            "Readiness",
            ">Simulated<",
            ">simulated<",
            "(simulated)",
        ] {
            assert!(!page.contains(gone), "{gone:?} on the page: {page}");
        }
        // The chart: the 36 readings of three hours but the 4 missing, broken at the gap.
        assert!(
            page.contains("last 3 h: 32 readings from 50 to 120 mg/dL; in range 70–180 mg/dL shaded; alerts at 55, 70 and 250 mg/dL"),
            "{page}"
        );
        // The alert thresholds are lines labelled as alerts; the range's edges are its own.
        for alert in [
            ">alert 55<",
            ">alert 70<",
            ">alert 250<",
            ">180</text>",
            ">70</text>",
        ] {
            assert!(page.contains(alert), "{alert} missing: {page}");
        }
        // The time axis: every hour of the three, then now.
        let axis: Vec<&str> = ["3 h ago", "2 h ago", "1 h ago", "now"]
            .into_iter()
            .filter(|tick| page.contains(&format!(">{tick}</text>")))
            .collect();
        assert_eq!(axis.len(), 4, "time axis ticks: {axis:?} in {page}");
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
        let page = render(&metrics, &histories, "/metrics", false);
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
            true,
        );
        assert!(!page.contains("<img"), "{page}");
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;&amp;&quot;"));
        assert!(page.contains("above 400 <span class=\"unit\">mg/dL"));
        assert!(page.contains("▲ above range"));
        assert!(page.contains("high alert: at or above 250 mg/dL"));
        assert!(page.contains("changing too fast to tell"));
        // The demo says so on the page and on the card.
        assert!(page.contains("<title>Dexcom Exporter (simulated)</title>"));
        assert!(page.contains("<strong>Simulated</strong>"));
        assert!(page.contains("<span class=\"tag\">simulated</span>"));
    }

    #[test]
    fn escapes_everything_that_could_open_markup() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }
}
