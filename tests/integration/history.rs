//! Each account's history against the simulator: a start reads the whole day once, a poll on
//! time asks for two or three rows, and readings that reach Share late (a phone's backlog) are
//! filled in by the read that follows, all of them, exactly once.

use std::time::Duration;

use dexcom_exporter::share::Reading;
use dexcom_exporter::simulator::ServedReading;

use crate::common::{USERNAME, sample};
use crate::harness::{TestApp, wait_until};

const ACCOUNT: &str = "account=\"publisher@example.com\"";

fn pairs_of_history(readings: &[Reading]) -> Vec<(i64, u16)> {
    readings
        .iter()
        .map(|r| (r.timestamp_ms, r.mg_per_dl))
        .collect()
}

fn pairs_of_served(readings: &[ServedReading]) -> Vec<(i64, u16)> {
    readings
        .iter()
        .map(|r| (r.sensor_ms, r.mg_per_dl))
        .collect()
}

#[tokio::test]
async fn a_start_reads_the_day_once_and_polls_on_time_read_two_or_three_rows() {
    let interval = Duration::from_millis(400);
    let app = TestApp::start(interval, &[]).await;
    let history = app.exporter.histories[0].clone();
    wait_until(Duration::from_secs(10), "the first read", || {
        !history.snapshot().is_empty()
    })
    .await;
    let first = app.sim.simulator.read_log(USERNAME);
    assert_eq!(first.reads, 1);
    assert_eq!(
        first.last_read,
        Some((1440, 288)),
        "the first read covers the day"
    );
    // What Share held at that moment: the newest 288 readings (the simulated day is longer).
    let held = history.snapshot();
    assert!(held.len() >= 288, "{}", held.len());
    let served = app.sim.simulator.visible_readings(USERNAME, 400);
    let newest_held = held[0].timestamp_ms;
    let expected: Vec<_> = served
        .iter()
        .filter(|r| r.sensor_ms <= newest_held)
        .take(288)
        .cloned()
        .collect();
    assert_eq!(pairs_of_history(&held[..288]), pairs_of_served(&expected));

    wait_until(Duration::from_secs(20), "ten more reads", || {
        app.sim.simulator.read_log(USERNAME).reads >= first.reads + 10
    })
    .await;
    let later = app.sim.simulator.read_log(USERNAME);
    let (minutes, max_count) = later.last_read.unwrap();
    assert!(
        minutes <= 3 && max_count <= 4,
        "{minutes} min, {max_count} rows"
    );
    let rows_per_read =
        (later.rows_served - first.rows_served) as f64 / (later.reads - first.reads) as f64;
    // At this cadence Share's one-minute window holds hundreds of readings, so the count is
    // what limits a read; at 5 minutes the window limits it to the new reading and the one before.
    assert!(rows_per_read <= 4.0, "{rows_per_read:.2} rows per read");
    app.stop().await;
}

#[tokio::test]
async fn a_phone_backlog_reaches_the_history_complete_and_once() {
    backlog_reaches_the_history(Duration::ZERO).await;
}

/// The phone sends its current reading first and the backlog three readings later: the reads
/// since the newest reading held pass over it, and the hole recheck (a read that Share answered
/// in full up to its row count is no check of what lies behind) must fetch it.
#[tokio::test]
async fn a_backlog_uploaded_after_newer_readings_is_fetched_by_the_hole_recheck() {
    backlog_reaches_the_history(Duration::from_millis(1200)).await;
}

async fn backlog_reaches_the_history(backlog_lag: Duration) {
    let interval = Duration::from_millis(400);
    let app = TestApp::start(interval, &[]).await;
    let history = app.exporter.histories[0].clone();
    wait_until(Duration::from_secs(10), "the first read", || {
        !history.snapshot().is_empty()
    })
    .await;
    let start_ms = history.snapshot().last().unwrap().timestamp_ms;
    app.sim.simulator.start_offline(USERNAME);
    tokio::time::sleep(interval * 10).await;
    let reads_before = app.counts().read;
    app.sim
        .simulator
        .end_offline_with_backlog_after(USERNAME, backlog_lag);
    let back_ms = dexcom_exporter::clock::unix_ms(std::time::SystemTime::now());
    // The outage's readings, all of them, in the history: the first read after the backlog
    // lands fetches them, or (when newer readings came first) the hole recheck of every sixth
    // poll. Counted in reads below, not in time: a loaded machine polls late, not less.
    let outage = app
        .sim
        .simulator
        .readings_between(USERNAME, start_ms, back_ms);
    let missing_from_history = || {
        outage
            .iter()
            .filter(|e| {
                !history
                    .snapshot()
                    .iter()
                    .any(|h| h.timestamp_ms == e.sensor_ms)
            })
            .map(|e| e.sensor_ms - back_ms)
            .collect::<Vec<_>>()
    };
    let within = Duration::from_secs(20);
    if tokio::time::timeout(within, async {
        while !missing_from_history().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .is_err()
    {
        panic!(
            "missing after {within:?} (ms after the phone's return): {:?}",
            missing_from_history()
        );
    }
    let newest = history.newest().unwrap().timestamp_ms;
    let expected = app
        .sim
        .simulator
        .readings_between(USERNAME, start_ms, newest + 1);
    let mut held = history.after(start_ms - 1);
    assert_eq!(held.len(), expected.len(), "nothing twice, nothing missing");
    held.dedup_by_key(|r| r.timestamp_ms);
    assert_eq!(pairs_of_history(&held), pairs_of_served(&expected));
    // No extra requests for the backlog: the polls the schedule makes anyway (about one per
    // reading plus a retry when a reading is late).
    let reads = app.counts().read - reads_before;
    let readings = (newest - back_ms) / interval.as_millis() as i64 + 1;
    assert!(
        reads as i64 <= 2 * readings,
        "{reads} reads for {readings} readings"
    );
    let scrape = app.scrape().await;
    let backfilled = sample(&scrape, "dexcom_readings_backfilled_total", ACCOUNT).unwrap();
    assert!(backfilled >= 8.0, "{backfilled} readings backfilled");
    app.stop().await;
}

/// A phone and an Apple Watch both upload every reading, seconds apart: each reading counts
/// once in the history (and so in everything pushed), the delta stays (the previous reading is
/// one interval back, not the repeat), and the day after a start is read in full (288
/// readings) although Share's rows hold each twice.
#[tokio::test]
async fn readings_uploaded_twice_count_once_and_the_day_is_still_read_in_full() {
    let interval = Duration::from_millis(500);
    let mut options = crate::harness::AppOptions::new(interval, &[]);
    options.scenario.accounts[0].repeated_uploads = true;
    let app = TestApp::start_with(options).await;
    let history = app.exporter.histories[0].clone();
    wait_until(Duration::from_secs(15), "a full day in the history", || {
        history.snapshot().len() >= 288
    })
    .await;
    let held = history.snapshot();
    for pair in held.windows(2) {
        let gap = pair[0].timestamp_ms - pair[1].timestamp_ms;
        assert!(gap >= 250, "two readings {gap} ms apart in the history");
    }
    let log = app.sim.simulator.read_log(USERNAME);
    eprintln!(
        "{} readings held after {} reads; last read {:?}",
        held.len(),
        log.reads,
        log.last_read
    );
    let scrape = app
        .scrape_until(Duration::from_secs(10), |s| {
            sample(s, "dexcom_glucose_delta_mg_per_dl", ACCOUNT).map(|_| s.to_owned())
        })
        .await;
    // The value shown is the first upload's sensor time, a whole interval after the last.
    let shown = sample(&scrape, "dexcom_glucose_reading_timestamp_seconds", ACCOUNT).unwrap();
    let newest = history.newest().unwrap();
    assert!(
        (shown * 1000.0 - newest.timestamp_ms as f64).abs() < 1.0
            || shown * 1000.0 < newest.timestamp_ms as f64,
        "shown {shown}, newest held {}",
        newest.timestamp_ms
    );
    app.stop().await;
}

/// The first start after a reboot with readings uploaded twice, at the real 5-minute cadence:
/// the first day read (288 rows) holds only 12 hours of twins, and the rest of the day is read
/// at once (a second read of 576 rows), not a reading later; the history (and so remote write)
/// holds the whole day within seconds of the start.
#[tokio::test]
async fn with_twins_the_whole_day_is_held_within_seconds_of_a_start() {
    let interval = Duration::from_secs(300);
    let mut options = crate::harness::AppOptions::new(interval, &[]);
    options.scenario.accounts[0].repeated_uploads = true;
    let app = TestApp::start_with(options).await;
    let history = app.exporter.histories[0].clone();
    let metrics = app.exporter.metrics.clone();
    wait_until(Duration::from_secs(10), "the first poll", || {
        metrics.accounts_awaiting_first_poll() == 0
    })
    .await;
    // The next reading is minutes away: only a read at once can fill the day now.
    wait_until(Duration::from_secs(5), "the whole day held", || {
        history.snapshot().len() >= 287
    })
    .await;
    let held = history.snapshot();
    let span_h = (held[0].timestamp_ms - held[held.len() - 1].timestamp_ms) as f64 / 3.6e6;
    let log = app.sim.simulator.read_log(USERNAME);
    eprintln!(
        "{} readings spanning {span_h:.1} h after {} reads (first {:?}, last {:?})",
        held.len(),
        log.reads,
        log.first_read,
        log.last_read
    );
    assert!(span_h > 23.5, "the history spans {span_h:.1} h");
    assert_eq!(log.reads, 2, "one read of 288 rows, one of 576");
    assert_eq!(log.last_read.map(|r| r.1), Some(576));
    app.stop().await;
}
