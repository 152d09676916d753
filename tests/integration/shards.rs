//! A clinic's accounts split over three replicas of the real binary (`--shard.index` of
//! `--shard.count 3`, one configuration file for all), scraped by a real Prometheus: every
//! account appears exactly once, from the replica its stable hash names, and each logs in
//! from that replica only.

use std::time::{Duration, Instant};

use dexcom_exporter::config::shard_of;
use dexcom_exporter::simulator::{AccountSpec, Scenario};

use crate::common::{
    KillOnDrop, free_port, prometheus_command, query, start, start_exporter_process, tool,
};
use crate::harness::{ScratchDir, accounts_file};

const ACCOUNTS: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_serve_every_account_exactly_once() {
    let Some(prometheus_bin) = tool("prometheus") else {
        return;
    };
    let dir = ScratchDir::new();
    let names: Vec<String> = (0..ACCOUNTS).map(|i| format!("camper{i:02}")).collect();
    let sim = start(Scenario {
        reading_interval: Duration::from_secs(1),
        accounts: names.iter().map(|n| AccountSpec::new(n, "pw")).collect(),
        ..Scenario::default()
    })
    .await;
    let pairs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "pw")).collect();
    let config = accounts_file(dir.path(), &sim.base_url(), &pairs);
    let config = config.display().to_string();
    let mut replicas = Vec::new();
    let mut targets = Vec::new();
    for index in 0..3 {
        let index = index.to_string();
        let (child, addr) = start_exporter_process(&[
            "--config.file",
            &config,
            "--shard.index",
            &index,
            "--shard.count",
            "3",
            "--dexcom.reading-interval",
            "1s",
            "--web.listen-address",
            "127.0.0.1:0",
        ]);
        replicas.push(child);
        targets.push(addr);
    }
    let port = free_port();
    let prom_config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: dexcom\n    static_configs:\n      - targets: ['{}', '{}', '{}']\n",
        targets[0], targets[1], targets[2]
    );
    let _prometheus = KillOnDrop(
        prometheus_command(&prometheus_bin, dir.path(), port, &prom_config)
            .spawn()
            .unwrap(),
    );
    let prometheus = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let up = loop {
        // Empty until Prometheus is up and has scraped.
        let up = query(&prometheus, "dexcom_up == 1")
            .await
            .unwrap_or_default();
        if up.len() >= ACCOUNTS {
            break up;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {ACCOUNTS} accounts up in Prometheus",
            up.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(up.len(), ACCOUNTS, "no account twice: {up:?}");
    let twice = query(
        &prometheus,
        "count by (account) (dexcom_glucose_mg_per_dl) > 1",
    )
    .await
    .unwrap();
    assert!(twice.is_empty(), "served by two replicas: {twice:?}");
    for series in &up {
        let account = series["metric"]["account"].as_str().unwrap();
        let instance = series["metric"]["instance"].as_str().unwrap();
        let replica = targets.iter().position(|t| t == instance).unwrap();
        assert_eq!(
            replica as u32,
            shard_of(account, 3),
            "{account} served by replica {replica}"
        );
    }
    let mut per_replica = [0; 3];
    for name in &names {
        per_replica[shard_of(name, 3) as usize] += 1;
        let counts = sim.simulator.request_counts(name);
        assert_eq!(
            counts.authenticate, 1,
            "{name} logged in once, from one replica"
        );
    }
    eprintln!("accounts per replica: {per_replica:?}");
    drop(replicas);
}
