//! The landing page's chart: an account's last three hours of readings as inline SVG, over the
//! target range, with the account's alert thresholds and a time axis. Apart from the page
//! (`landing.rs`) because it is drawing, not words: coordinates, ticks and the sensor's cadence.

use std::fmt::Write as _;

use crate::metrics::Thresholds;
use crate::share::Reading;

/// The readings the chart spans: three hours at the sensor's 5-minute cadence (the span follows
/// the cadence the history shows, so an accelerated simulator draws as many readings).
pub const CHART_READINGS: i64 = 36;

/// The standard target range in mg/dL, both ends in range (the international consensus on time
/// in range, Battelino et al., Diabetes Care 2019); `deploy/prometheus/recording.yml` and the
/// Grafana dashboard use the same.
pub const TARGET_RANGE: (u16, u16) = (70, 180);

/// The last [`CHART_READINGS`] readings' span as an SVG line, broken where readings are missing,
/// over the target range (shaded, 70–180), with the account's alert thresholds as dashed lines
/// labelled as alerts and a time axis below; its `<title>` says what it shows for screen readers.
/// `name` comes escaped for HTML.
pub(super) fn chart(
    out: &mut String,
    name: &str,
    history: &[Reading],
    thresholds: Thresholds,
    now_ms: i64,
) {
    const W: f64 = 300.0;
    const H: f64 = 100.0;
    /// Height of the time axis under the plot.
    const AXIS: f64 = 9.0;
    const LOW: f64 = 40.0;
    const HIGH: f64 = 350.0;
    let cadence_ms = cadence_ms(history);
    let span_ms = cadence_ms * CHART_READINGS;
    let start_ms = now_ms - span_ms;
    let span_text = duration_words(span_ms);
    let x = |t: i64| ((t - start_ms) as f64 / span_ms as f64 * W).clamp(0.0, W);
    let y = |mg: f64| H - (mg.clamp(LOW, HIGH) - LOW) / (HIGH - LOW) * H;
    let mut points: Vec<&Reading> = history
        .iter()
        .filter(|r| r.timestamp_ms >= start_ms && r.timestamp_ms <= now_ms)
        .collect();
    points.reverse();
    let (range_low, range_high) = TARGET_RANGE;
    let shown = match (
        points.iter().map(|r| r.mg_per_dl).min(),
        points.iter().map(|r| r.mg_per_dl).max(),
    ) {
        (Some(min), Some(max)) => {
            format!("{} readings from {min} to {max} mg/dL", points.len())
        }
        _ => "no readings".to_owned(),
    };
    let title = format!(
        "Glucose of {}, last {span_text}: {shown}; in range {range_low}–{range_high} mg/dL shaded; \
alerts at {}, {} and {} mg/dL",
        name, thresholds.urgent_low, thresholds.low, thresholds.high
    );
    let (band_top, band_bottom) = (y(f64::from(range_high)), y(f64::from(range_low)));
    let _ = write!(
        out,
        "<svg viewBox=\"0 0 {W} {}\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\"><title>{title}</title>\
<rect x=\"0\" y=\"0\" width=\"{W}\" height=\"{H}\" fill=\"#f4f4f4\"/>\
<rect x=\"0\" y=\"{band_top:.1}\" width=\"{W}\" height=\"{:.1}\" fill=\"#d5f5e3\"/>\
<g font-size=\"6\" fill=\"#1e8449\" text-anchor=\"end\" aria-hidden=\"true\"><text x=\"{lx}\" y=\"{:.1}\">{range_high}</text><text x=\"{lx}\" y=\"{:.1}\">{range_low}</text></g>",
        H + AXIS,
        band_bottom - band_top,
        band_top + 6.0,
        band_bottom - 1.5,
        lx = W - 2.0,
    );
    // The alert thresholds: dashed, labelled "alert" on the left, apart from the range's numbers.
    // Urgent low sits close under low on this scale: its label goes under its line.
    for (mg, colour, label_dy) in [
        (thresholds.urgent_low, "#b00020", 5.0),
        (thresholds.low, "#d35400", -1.0),
        (thresholds.high, "#b7950b", -1.0),
    ] {
        let at = y(f64::from(mg));
        let _ = write!(
            out,
            "<line x1=\"0\" x2=\"{W}\" y1=\"{at:.1}\" y2=\"{at:.1}\" stroke=\"{colour}\" stroke-dasharray=\"3 2\" stroke-width=\"0.6\"/>\
<text x=\"2\" y=\"{:.1}\" font-size=\"5\" fill=\"{colour}\" aria-hidden=\"true\">alert {mg}</text>",
            at + label_dy
        );
    }
    time_axis(out, span_ms, W, H);
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

/// Ticks under the plot at each third of the span, labelled by how long ago ("3 h ago" ...
/// "now"), with faint vertical lines through the plot.
fn time_axis(out: &mut String, span_ms: i64, width: f64, height: f64) {
    out.push_str("<g font-size=\"6\" fill=\"#555\" aria-hidden=\"true\">");
    for third in 0..=3_i64 {
        let at = width * third as f64 / 3.0;
        let anchor = match third {
            0 => "start",
            3 => "end",
            _ => "middle",
        };
        let ago = span_ms * (3 - third) / 3;
        let label = if ago == 0 {
            "now".to_owned()
        } else {
            format!("{} ago", duration_words(ago))
        };
        let _ = write!(
            out,
            "<line x1=\"{at:.1}\" x2=\"{at:.1}\" y1=\"0\" y2=\"{height}\" stroke=\"#ccc\" stroke-width=\"0.4\"/>\
<text x=\"{at:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{label}</text>",
            height + 7.0
        );
    }
    out.push_str("</g>");
}

/// A span in the words the axis uses: whole hours as "3 h", whole minutes as "40 min", else
/// seconds (an accelerated simulator's 72 s is not rounded to a minute).
fn duration_words(ms: i64) -> String {
    let seconds = ms / 1000;
    if seconds >= 3600 && seconds % 3600 == 0 {
        format!("{} h", seconds / 3600)
    } else if seconds >= 60 && seconds % 60 == 0 {
        format!("{} min", seconds / 60)
    } else {
        format!("{seconds} s")
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_axis_speaks_in_hours_minutes_or_seconds() {
        assert_eq!(duration_words(3 * 3_600_000), "3 h");
        assert_eq!(duration_words(3_600_000), "1 h");
        assert_eq!(duration_words(90 * 60_000), "90 min");
        assert_eq!(duration_words(6_000), "6 s");
        assert_eq!(duration_words(72_000), "72 s");
        let mut out = String::new();
        time_axis(&mut out, 3 * 3_600_000, 300.0, 100.0);
        let ticks: Vec<&str> = out
            .split("</text>")
            .filter_map(|t| t.rsplit('>').next())
            .filter(|t| !t.is_empty())
            .collect();
        assert_eq!(ticks, ["3 h ago", "2 h ago", "1 h ago", "now"]);
    }
}
