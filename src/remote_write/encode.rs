//! The remote-write 1.0 body: a `prometheus.WriteRequest` in protobuf, compressed with snappy's
//! block format.
//!
//! Four message types with two or fewer fields each do not justify a code generator: the
//! encoding below follows the protobuf wire format for exactly the fields remote write 1.0
//! defines (`WriteRequest.timeseries = 1`; `TimeSeries.labels = 1`, `samples = 2`;
//! `Label.name = 1`, `value = 2`; `Sample.value = 1` (double), `timestamp = 2` (int64, ms)).
//! The real receivers in the tests (Prometheus, VictoriaMetrics) decode what it writes.

/// One series and its samples, labels already sorted by name (remote write requires it).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// `(name, value)` pairs, `__name__` included, sorted by name, no name twice.
    pub labels: Vec<(String, String)>,
    /// `(timestamp in ms, value)`, oldest first.
    pub samples: Vec<(i64, f64)>,
}

/// The protobuf encoding of a `WriteRequest` holding `series`.
pub fn write_request(series: &[Series]) -> Vec<u8> {
    let mut request = Vec::new();
    let mut one = Vec::new();
    let mut field = Vec::new();
    for s in series {
        one.clear();
        for (name, value) in &s.labels {
            field.clear();
            bytes_field(&mut field, 1, name.as_bytes());
            bytes_field(&mut field, 2, value.as_bytes());
            bytes_field(&mut one, 1, &field);
        }
        for (timestamp_ms, value) in &s.samples {
            field.clear();
            // A double is wire type 1 (eight bytes, little-endian).
            key(&mut field, 1, 1);
            field.extend_from_slice(&value.to_le_bytes());
            // An int64 is a varint of its two's-complement bits.
            key(&mut field, 2, 0);
            varint(&mut field, *timestamp_ms as u64);
            bytes_field(&mut one, 2, &field);
        }
        bytes_field(&mut request, 1, &one);
    }
    request
}

/// `body` compressed as remote write requires (snappy block format, not the framed stream).
///
/// # Errors
/// Only for a body larger than snappy's 4 GiB limit, which a batch never is.
pub fn compress(body: &[u8]) -> Result<Vec<u8>, snap::Error> {
    snap::raw::Encoder::new().compress_vec(body)
}

fn key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

fn bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    key(out, field, 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_one_series_as_the_protobuf_wire_format_says() {
        let series = Series {
            labels: vec![("__name__".into(), "g".into()), ("a".into(), "b".into())],
            samples: vec![(300, 1.5)],
        };
        let label = |n: &str, v: &str| {
            let mut l = vec![0x0a, n.len() as u8];
            l.extend_from_slice(n.as_bytes());
            l.extend_from_slice(&[0x12, v.len() as u8]);
            l.extend_from_slice(v.as_bytes());
            l
        };
        let mut ts = Vec::new();
        for l in [label("__name__", "g"), label("a", "b")] {
            ts.extend_from_slice(&[0x0a, l.len() as u8]);
            ts.extend_from_slice(&l);
        }
        // Sample: 0x09 + 8 bytes of 1.5, 0x10 + varint 300 (0xac 0x02).
        let mut sample = vec![0x09];
        sample.extend_from_slice(&1.5f64.to_le_bytes());
        sample.extend_from_slice(&[0x10, 0xac, 0x02]);
        ts.extend_from_slice(&[0x12, sample.len() as u8]);
        ts.extend_from_slice(&sample);
        let mut expected = vec![0x0a, ts.len() as u8];
        expected.extend_from_slice(&ts);
        assert_eq!(write_request(&[series]), expected);
    }

    #[test]
    fn long_fields_get_multi_byte_lengths_and_compression_round_trips() {
        let series = Series {
            labels: vec![("__name__".into(), "x".repeat(200))],
            samples: (0..100)
                .map(|i| (1_800_000_000_000 + i * 300_000, 100.0))
                .collect(),
        };
        let body = write_request(&[series.clone(), series]);
        // 200 bytes of value need a two-byte length: 0xc8 0x01.
        assert!(body.windows(3).any(|w| w == [0x12, 0xc8, 0x01]));
        let compressed = compress(&body).unwrap();
        assert!(compressed.len() < body.len());
        assert_eq!(
            snap::raw::Decoder::new()
                .decompress_vec(&compressed)
                .unwrap(),
            body
        );
    }

    #[test]
    fn negative_timestamps_take_ten_bytes() {
        let mut out = Vec::new();
        varint(&mut out, -1i64 as u64);
        assert_eq!(out.len(), 10);
    }
}
