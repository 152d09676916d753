//! The standard `process_*` metrics, read from `/proc/self` at scrape time.
//!
//! prometheus-client has no process collector. The start time is recorded at start-up rather
//! than derived from `/proc/stat`, which the systemd unit's `ProcSubset=pid` hides. Anything
//! unreadable (another OS, a hardened sandbox) is simply left out.

use std::time::SystemTime;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// `/proc` reports CPU time in USER_HZ ticks, which Linux fixes at 100 for user space.
const TICKS_PER_SECOND: f64 = 100.0;

/// Encodes the process metrics that can be read.
pub fn encode(encoder: &mut DescriptorEncoder, started: SystemTime) -> Result<(), std::fmt::Error> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| -> Option<f64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
            .map(|n| n * 1024.0)
    };
    if let Some(cpu) = cpu_seconds() {
        let metric = ConstCounter::new(cpu);
        metric.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            MetricType::Counter,
        )?)?;
    }
    let mut gauges: Vec<(&str, &str, f64)> = Vec::new();
    if let Some(rss) = kib("VmRSS:") {
        gauges.push((
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            rss,
        ));
    }
    if let Some(vsz) = kib("VmSize:") {
        gauges.push((
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            vsz,
        ));
    }
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        gauges.push((
            "process_open_fds",
            "Number of open file descriptors.",
            entries.count() as f64,
        ));
    }
    if let Some(max) = max_fds() {
        gauges.push((
            "process_max_fds",
            "Maximum number of open file descriptors.",
            max,
        ));
    }
    if let Ok(since) = started.duration_since(SystemTime::UNIX_EPOCH) {
        gauges.push((
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            since.as_secs_f64(),
        ));
    }
    for (name, help, value) in gauges {
        let metric = ConstGauge::new(value);
        metric.encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)?;
    }
    Ok(())
}

fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may contain spaces; the fields we want come after its closing ')'.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

fn max_fds() -> Option<f64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}
