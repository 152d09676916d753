//! `dexcom_exporter backfill` through the real binary and the real `promtool`: the blocks
//! `promtool tsdb create-blocks-from openmetrics` makes from its output hold exactly the
//! readings the simulator served, at their sensor times, and an account that cannot be read
//! is reported without losing the others.

use std::time::Duration;

use dexcom_exporter::simulator::{AccountSpec, Scenario};

use crate::common::{start, tool};
use crate::harness::{ScratchDir, accounts_file};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_blocks_from_the_backfill_hold_exactly_the_readings() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let dir = ScratchDir::new();
    let sim = start(Scenario {
        reading_interval: Duration::from_secs(300),
        accounts: vec![
            AccountSpec::new("kid", "pw-kid"),
            AccountSpec::new("teen", "pw-teen"),
            AccountSpec::new("parent", "pw-parent"),
        ],
        ..Scenario::default()
    })
    .await;
    // The third account's password is wrong: reported, the other two written.
    let config = accounts_file(
        dir.path(),
        &sim.base_url(),
        &[("kid", "pw-kid"), ("teen", "pw-teen"), ("parent", "wrong")],
    );
    let output = dir.path().join("backfill.om");
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_dexcom_exporter"))
        .arg("backfill")
        .arg("--config.file")
        .arg(&config)
        .arg("--storage.path")
        .arg(dir.path().join("state"))
        .arg("--output")
        .arg(&output)
        .output()
        .await
        .unwrap();
    let log = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "one account failed: {log}");
    assert!(
        log.contains("account=parent") || log.contains("account=\"parent\""),
        "{log}"
    );
    assert!(!log.contains("wrong"), "no password in the log: {log}");

    let blocks = dir.path().join("blocks");
    let created = std::process::Command::new(&promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&output)
        .arg(&blocks)
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "promtool refused the backfill: {}",
        String::from_utf8_lossy(&created.stderr)
    );
    // `promtool tsdb dump` reads a write-ahead log too; blocks made offline have none.
    std::fs::create_dir_all(blocks.join("wal")).unwrap();
    let dump = std::process::Command::new(&promtool)
        .args(["tsdb", "dump"])
        .arg(&blocks)
        .output()
        .unwrap();
    assert!(dump.status.success());
    let dump = String::from_utf8(dump.stdout).unwrap();
    for (account, username) in [("kid", "kid"), ("teen", "teen")] {
        let mut glucose: Vec<(i64, u16)> = Vec::new();
        let mut trend: Vec<(i64, u8)> = Vec::new();
        let prefix_g = format!(
            "{{__name__=\"dexcom_reading_glucose_mg_per_dl\", account=\"{account}\", job=\"dexcom\"}} "
        );
        let prefix_t = format!(
            "{{__name__=\"dexcom_reading_trend\", account=\"{account}\", job=\"dexcom\"}} "
        );
        for line in dump.lines() {
            if let Some(rest) = line.strip_prefix(&prefix_g) {
                let (value, ms) = rest.split_once(' ').unwrap();
                glucose.push((ms.parse().unwrap(), value.parse().unwrap()));
            } else if let Some(rest) = line.strip_prefix(&prefix_t) {
                let (value, ms) = rest.split_once(' ').unwrap();
                trend.push((ms.parse().unwrap(), value.parse().unwrap()));
            }
        }
        glucose.sort_unstable();
        trend.sort_unstable();
        // What Share served when the backfill read it (a reading may have been uploaded since).
        // (Share's 24-hour window holds 287 or 288 readings, by where its edge falls.)
        let oldest = glucose.first().map_or(0, |g| g.0);
        let newest = glucose.last().map_or(0, |g| g.0);
        let served: Vec<_> = sim
            .simulator
            .visible_readings(username, 289)
            .into_iter()
            .filter(|r| (oldest..=newest).contains(&r.sensor_ms))
            .collect();
        let mut expected: Vec<(i64, u16)> =
            served.iter().map(|r| (r.sensor_ms, r.mg_per_dl)).collect();
        expected.sort_unstable();
        assert!(
            glucose.len() >= 287,
            "{account}: a day of readings, {}",
            glucose.len()
        );
        assert!(
            newest - oldest >= 23 * 3600 * 1000,
            "{account}: the whole day"
        );
        assert_eq!(
            glucose, expected,
            "{account}: exactly the readings Share served"
        );
        let mut expected_trend: Vec<(i64, u8)> = served
            .iter()
            .map(|r| (r.sensor_ms, r.trend.code()))
            .collect();
        expected_trend.sort_unstable();
        assert_eq!(
            trend, expected_trend,
            "{account}: the trend of each reading"
        );
    }
    assert!(
        !dump.contains("account=\"parent\""),
        "nothing for the failed account"
    );
}
