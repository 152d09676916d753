//! Share's wire format as the simulator writes it: readings in the current or the legacy
//! format, the HTTP 500 fault envelope with its `SubCode` in either style, and the headers
//! and framing Share's JSON answers arrive with through Cloudflare (as recorded in 2025,
//! `tests/fixtures/share-recorded/`).

use std::time::SystemTime;

use hyper::header::{HeaderName, HeaderValue};

use crate::http::serve::HttpResponse;
use crate::share::Endpoint;

use super::ServedReading;
use super::scenario::SubCodeStyle;

/// Renders readings (already newest first) as a Share JSON body.
pub fn readings_body(readings: &[ServedReading], legacy: bool) -> String {
    let rows: Vec<String> = readings
        .iter()
        .map(|r| {
            let offset = offset_suffix(r.utc_offset_minutes);
            if legacy {
                // Before December 2021: WCF dates with escaped slashes, an integer trend, and
                // a DT whose epoch is shifted into local time with a +0000 suffix.
                let shifted = r.sensor_ms + i64::from(r.utc_offset_minutes) * 60_000;
                format!(
                    r#"{{"DT":"\/Date({shifted}+0000)\/","ST":"\/Date({ms})\/","Trend":{trend},"Value":{value},"WT":"\/Date({ms})\/"}}"#,
                    ms = r.sensor_ms,
                    trend = r.trend.code(),
                    value = r.mg_per_dl,
                )
            } else {
                format!(
                    r#"{{"WT":"Date({ms})","ST":"Date({ms})","DT":"Date({ms}{offset})","Value":{value},"Trend":"{trend}"}}"#,
                    ms = r.sensor_ms,
                    value = r.mg_per_dl,
                    trend = r.trend.wire_name(),
                )
            }
        })
        .collect();
    format!("[{}]", rows.join(","))
}

fn offset_suffix(minutes: i32) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    let m = minutes.unsigned_abs();
    format!("{sign}{:02}{:02}", m / 60, m % 60)
}

/// The metadata Share puts into a fault's `SubCode` for each code.
struct FaultMeta {
    kind: u8,
    kind_name: &'static str,
    category: u8,
    category_name: &'static str,
    severity: u8,
    severity_name: &'static str,
}

fn meta(code: &str) -> FaultMeta {
    let (kind, kind_name, category, category_name, severity, severity_name) = match code {
        "SessionIdNotFound" => (5, "ObjectNotFound", 2, "Database", 2, "Severe"),
        "SessionNotValid" => (6, "SessionNotValid", 5, "Logical", 1, "Minor"),
        "AccountPasswordInvalid" => (13, "InvalidPassword", 4, "Validation", 1, "Minor"),
        "InvalidArgument" => (10, "InvalidArgument", 4, "Validation", 2, "Severe"),
        _ => (15, "SingleSignOn", 1, "System", 2, "Severe"),
    };
    FaultMeta {
        kind,
        kind_name,
        category,
        category_name,
        severity,
        severity_name,
    }
}

/// The JSON fault envelope Share sends with HTTP 500.
pub fn fault_body(style: SubCodeStyle, code: &str, message: &str, now: SystemTime) -> String {
    let m = meta(code);
    let thrown = humantime::format_rfc3339_nanos(now).to_string();
    let local = thrown.trim_end_matches('Z').to_owned();
    let id = uuid::Uuid::new_v4();
    let full_text = format!("com.dexcom.udp.common.data.exception.OnlineException: {message}");
    // SessionNotValid carries an empty ErrorCode in the recordings.
    let error_code = if code == "SessionNotValid" { "" } else { code };
    let sub_code = match style {
        SubCodeStyle::Xml => format!(
            r#"<OnlineException DateThrownLocal="{local}" DateThrown="{thrown}" ErrorCode="{error_code}" Type="{}" Category="{}" Severity="{}" TypeString="{}" CategoryString="{}" SeverityString="{}" HostName="" HostIP="" Id="{{{id}}}" Message="{}" FullText="{}" />"#,
            m.kind,
            m.category,
            m.severity,
            m.kind_name,
            m.category_name,
            m.severity_name,
            xml_escape(message),
            xml_escape(&full_text),
        ),
        SubCodeStyle::Json => {
            let inner = serde_json::json!({
                "OnlineException": {
                    "DateThrownLocal": local,
                    "DateThrown": thrown,
                    "ErrorCode": error_code,
                    "Type": m.kind,
                    "Category": m.category,
                    "Severity": m.severity,
                    "TypeString": m.kind_name,
                    "CategoryString": m.category_name,
                    "SeverityString": m.severity_name,
                    "HostName": "",
                    "HostIP": "",
                    "Id": id.to_string(),
                    "Message": message,
                    "FullText": full_text,
                }
            });
            serde_json::to_string_pretty(&inner).unwrap_or_default()
        }
    };
    serde_json::json!({
        "Code": code,
        "Message": message,
        "SubCode": sub_code,
        "TypeName": "FaultException",
    })
    .to_string()
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Gives one of Share's JSON answers the headers and framing recorded from `share2` in 2025:
/// Cloudflare's (`Server: cloudflare`, `CF-RAY`, `cf-cache-status`, HSTS, `vary`) and
/// Share's `x-trace-id` and `nosniff` on every answer; `no-cache` and the other
/// anti-caching and framing headers on the login endpoints only; and the readings endpoint's
/// successes chunked, without `Content-Length` (its errors carry one, like every login
/// answer). Answers that are not JSON (fault pages, Cloudflare's own) are left as they are.
pub(super) fn as_share_sends(response: &mut HttpResponse, endpoint: Endpoint) {
    let json = response
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !json {
        return;
    }
    let ok = response.status().is_success();
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set("server", "cloudflare");
    set("cf-ray", "8f0e0d0c0b0a0908-EWR");
    set("cf-cache-status", "DYNAMIC");
    set(
        "strict-transport-security",
        "max-age=15780000; includeSubDomains; preload",
    );
    set(
        "vary",
        "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
    );
    set("x-trace-id", &uuid::Uuid::new_v4().to_string());
    set("x-content-type-options", "nosniff");
    if endpoint.is_login() {
        set(
            "cache-control",
            "no-cache, no-store, max-age=0, must-revalidate",
        );
        set("expires", "0");
        set("pragma", "no-cache");
        set("x-frame-options", "DENY");
        set("x-xss-protection", "0");
    } else if ok {
        // hyper frames a body chunked when the response says so, and then sends no length.
        set("transfer-encoding", "chunked");
    }
}

/// An error body in JSON that carries no Share `Code` (a framework's default error page).
pub const JSON_WITHOUT_CODE: &str = r#"{"timestamp":"2026-01-01T00:00:00.000+00:00","status":500,"error":"Internal Server Error","path":"/ShareWebServices/Services/Publisher/ReadPublisherLatestGlucoseValues"}"#;

/// The HTML page Cloudflare serves when the origin is down.
pub const HTML_BAD_GATEWAY: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::share::Trend;
    use crate::share::parse_wire_readings;

    fn sample() -> ServedReading {
        ServedReading {
            index: 1,
            sensor_ms: 1_638_360_842_000,
            visible_ms: 1_638_360_852_000,
            mg_per_dl: 158,
            trend: Trend::FortyFiveUp,
            utc_offset_minutes: -300,
        }
    }

    #[test]
    fn both_formats_round_trip_through_the_client_parser() {
        for legacy in [false, true] {
            let body = readings_body(&[sample()], legacy);
            let parsed = parse_wire_readings(body.as_bytes()).unwrap().readings;
            assert_eq!(parsed[0].timestamp_ms, 1_638_360_842_000, "legacy={legacy}");
            assert_eq!(parsed[0].trend, Trend::FortyFiveUp);
            assert_eq!(parsed[0].mg_per_dl, 158);
        }
        let legacy = readings_body(&[sample()], true);
        assert!(
            legacy.contains(r#""DT":"\/Date(1638342842000+0000)\/""#),
            "{legacy}"
        );
        assert!(legacy.contains(r#""Trend":3"#));
        let current = readings_body(&[sample()], false);
        assert!(
            current.starts_with(r#"[{"WT":"Date(1638360842000)","ST""#),
            "{current}"
        );
        assert!(current.contains("Date(1638360842000-0500)"));
    }

    #[test]
    fn fault_envelopes_have_four_string_fields() {
        for style in [SubCodeStyle::Xml, SubCodeStyle::Json] {
            let body = fault_body(
                style,
                "SessionIdNotFound",
                "Failed to find session object.",
                SystemTime::now(),
            );
            let value: serde_json::Value = serde_json::from_str(&body).unwrap();
            let object = value.as_object().unwrap();
            assert_eq!(object.len(), 4);
            assert!(object.values().all(|v| v.is_string()));
            assert_eq!(object["TypeName"], "FaultException");
            assert!(
                object["SubCode"]
                    .as_str()
                    .unwrap()
                    .contains("ObjectNotFound")
            );
        }
    }
}
