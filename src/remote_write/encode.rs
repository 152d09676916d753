//! The remote-write 1.0 body: a `prometheus.WriteRequest` in protobuf, compressed with snappy's
//! block format.
//!
//! The four messages remote write 1.0 defines, derived with `prost` (no `.proto` file, no code
//! generator, no build script): `WriteRequest.timeseries = 1`; `TimeSeries.labels = 1`,
//! `samples = 2`; `Label.name = 1`, `value = 2`; `Sample.value = 1` (double), `timestamp = 2`
//! (int64, ms). The tests decode with the same messages; the real receivers in the tests
//! (Prometheus, VictoriaMetrics) decode what it writes independently.

use prost::Message as _;

/// One series and its samples, labels already sorted by name (remote write requires it).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// `(name, value)` pairs, `__name__` included, sorted by name, no name twice.
    pub labels: Vec<(String, String)>,
    /// `(timestamp in ms, value)`, oldest first.
    pub samples: Vec<(i64, f64)>,
}

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// One entry per series and account, each with its samples.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Its labels, sorted by name.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Its samples, oldest first.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    /// The label's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The label's value, UTF-8 as Prometheus requires.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// The sample value (mg/dL, or the trend code).
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Unix time in milliseconds.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// The protobuf encoding of a `WriteRequest` holding `series`.
pub fn write_request(series: &[Series]) -> Vec<u8> {
    WriteRequest {
        timeseries: series
            .iter()
            .map(|s| TimeSeries {
                labels: s
                    .labels
                    .iter()
                    .map(|(name, value)| Label {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect(),
                samples: s
                    .samples
                    .iter()
                    .map(|(timestamp, value)| Sample {
                        value: *value,
                        timestamp: *timestamp,
                    })
                    .collect(),
            })
            .collect(),
    }
    .encode_to_vec()
}

/// `body` compressed as remote write requires (snappy block format, not the framed stream).
///
/// # Errors
/// Only for a body larger than snappy's 4 GiB limit, which a batch never is.
pub fn compress(body: &[u8]) -> Result<Vec<u8>, snap::Error> {
    snap::raw::Encoder::new().compress_vec(body)
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
    fn negative_timestamps_take_ten_bytes_and_decode_back() {
        let sample = Sample {
            value: 2.0,
            timestamp: -1,
        };
        // Key (1) + double (8) + key (1) + a ten-byte varint of -1.
        assert_eq!(sample.encode_to_vec().len(), 20);
        assert_eq!(Sample::decode(&sample.encode_to_vec()[..]).unwrap(), sample);
    }
}
