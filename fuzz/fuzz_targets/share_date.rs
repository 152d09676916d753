//! Any text as a Share date (`Date(ms±hhmm)`, `/Date(ms)/`): parsed or refused, never a panic.
#![no_main]

use dexcom_exporter::share::parse_share_date;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Some(date) = parse_share_date(text) {
        assert!(date.offset_minutes.is_none_or(|m| m.abs() <= 14 * 60 + 59));
    }
});
