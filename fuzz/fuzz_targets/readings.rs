//! Any bytes as a Share readings answer: an answer or an error, never a panic, and what is
//! accepted is sorted newest first, one reading per sensor time, within 39–401 mg/dL.
#![no_main]

use dexcom_exporter::share::{GLUCOSE_RANGE, parse_wire_readings};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(batch) = parse_wire_readings(body) {
        assert!(
            batch
                .readings
                .windows(2)
                .all(|w| w[0].timestamp_ms > w[1].timestamp_ms)
        );
        assert!(
            batch
                .readings
                .iter()
                .all(|r| GLUCOSE_RANGE.contains(&r.mg_per_dl))
        );
    }
});
