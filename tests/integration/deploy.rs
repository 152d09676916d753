//! What users deploy, checked by the real tools: `systemd-analyze`, `promtool`, `amtool`, and
//! a lint of the Grafana dashboard.

use std::collections::HashSet;

use crate::common::{repo, tool};

fn run(program: &std::path::Path, args: &[&str]) -> (bool, String) {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    crate::common::run_tool(program, &args)
}

/// The unit with `ExecStart=` pointed at the freshly built binary, as `systemd-analyze
/// verify` insists the binary exist.
fn unit_for_this_build() -> std::path::PathBuf {
    let unit = std::fs::read_to_string(repo().join("deploy/dexcom_exporter.service")).unwrap();
    let unit = unit.replace(
        "/usr/bin/dexcom_exporter",
        env!("CARGO_BIN_EXE_dexcom_exporter"),
    );
    let dir = std::env::temp_dir().join(format!("unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("dexcom_exporter.service");
    std::fs::write(&path, unit).unwrap();
    path
}

#[test]
fn systemd_unit_with_the_accounts_drop_in_verifies_cleanly() {
    let Some(analyze) = tool("systemd-analyze") else {
        return;
    };
    let unit = unit_for_this_build();
    let drop_ins = unit.with_extension("service.d");
    std::fs::create_dir_all(&drop_ins).unwrap();
    std::fs::copy(
        repo().join("deploy/systemd/accounts.conf"),
        drop_ins.join("accounts.conf"),
    )
    .unwrap();
    let (_, text) = run(&analyze, &["verify", unit.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&drop_ins);
    // The drop-in is read (a broken line there is reported), and nothing is reported.
    assert!(
        text.trim().is_empty(),
        "systemd-analyze verify printed:\n{text}"
    );
}

#[test]
fn systemd_unit_verifies_cleanly() {
    let Some(analyze) = tool("systemd-analyze") else {
        return;
    };
    let unit = unit_for_this_build();
    let (_, text) = run(&analyze, &["verify", unit.to_str().unwrap()]);
    // verify exits 0 even on unknown keys, so any output at all is a failure.
    assert!(
        text.trim().is_empty(),
        "systemd-analyze verify printed:\n{text}"
    );
}

#[test]
fn systemd_unit_exposure_is_at_most_1_5() {
    let Some(analyze) = tool("systemd-analyze") else {
        return;
    };
    let unit = unit_for_this_build();
    let (ok, text) = run(
        &analyze,
        &[
            "security",
            "--offline=yes",
            "--threshold=15",
            unit.to_str().unwrap(),
        ],
    );
    let exposure: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for dexcom_exporter.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    eprintln!("systemd-analyze security exposure: {exposure}");
    assert!(ok && exposure <= 1.5, "exposure {exposure}:\n{text}");
    for setting in [
        "LoadCredential=",
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "SystemCallFilter=@system-service",
        "RestrictAddressFamilies=",
        "CapabilityBoundingSet=",
    ] {
        assert!(
            std::fs::read_to_string(&unit).unwrap().contains(setting),
            "{setting}"
        );
    }
}

#[test]
fn prometheus_rules_check_and_unit_tests_pass() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    for args in [
        &[
            "check",
            "rules",
            "deploy/prometheus/alerts.yml",
            "deploy/prometheus/recording.yml",
        ][..],
        &["check", "config", "deploy/prometheus/prometheus.yml"][..],
        &[
            "test",
            "rules",
            "deploy/prometheus/tests/alerts_test.yml",
            "deploy/prometheus/tests/recording_test.yml",
        ][..],
    ] {
        let (ok, text) = run(&promtool, args);
        assert!(ok, "promtool {args:?} failed:\n{text}");
    }
}

#[test]
fn alerts_have_the_contracted_names_and_severities() {
    let alerts = std::fs::read_to_string(repo().join("deploy/prometheus/alerts.yml")).unwrap();
    let names: Vec<&str> = alerts
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert_eq!(
        names,
        [
            "DexcomGlucoseUrgentLow",
            "DexcomGlucoseUrgentLowSoon",
            "DexcomGlucoseLow",
            "DexcomGlucoseHigh",
            "DexcomGlucoseFallingFast",
            "DexcomGlucoseRisingFast",
            "DexcomSignalLoss",
            "DexcomShareLoginFailing",
            "DexcomLoginStateFailing",
            "DexcomShareUnavailable",
            "DexcomExporterDown",
            "DexcomNoGlucoseValue",
            "DexcomShareClockSkew",
            "DexcomRemoteWriteRefused",
            "DexcomRemoteWriteReadingsExpired",
            "Watchdog",
            "AlertmanagerNotificationsFailing",
        ]
    );
    let tests =
        std::fs::read_to_string(repo().join("deploy/prometheus/tests/alerts_test.yml")).unwrap();
    for name in names {
        assert!(
            tests.contains(&format!("alertname: {name}")),
            "no promtool test for {name}"
        );
    }
    assert_eq!(
        alerts.matches("severity: critical").count(),
        4,
        "only the two urgent-low alerts, the no-value net and a failing phone channel are critical"
    );
}

#[test]
fn alertmanager_example_is_valid() {
    let Some(amtool) = tool("amtool") else { return };
    let (ok, text) = run(
        &amtool,
        &["check-config", "deploy/alertmanager/alertmanager.yml"],
    );
    assert!(ok, "{text}");
    // Receivers that reach a phone: Pushover at emergency priority for critical alerts and
    // quiet for their end, Telegram, and a webhook (ntfy relay); placeholders only for the
    // secrets. What the phone gets is tested end to end in `notifications`.
    let config: serde_json::Value = serde_saphyr::from_str(
        &std::fs::read_to_string(repo().join("deploy/alertmanager/alertmanager.yml")).unwrap(),
    )
    .unwrap();
    let critical = config["receivers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "glucose-critical")
        .unwrap();
    assert_eq!(
        critical["pushover_configs"][0]["priority"],
        r#"{{ if eq .Status "firing" }}2{{ else }}-1{{ end }}"#
    );
    assert!(critical["telegram_configs"].is_array());
    assert!(critical["webhook_configs"].is_array());
    assert!(
        critical["pushover_configs"][0]["token"]
            .as_str()
            .unwrap()
            .starts_with("REPLACE-")
    );
}

/// The shipped routing, asked of Alertmanager's own route tester: the dead man's switch goes
/// to the heartbeat (and, once a day, silently to the phone), a failing phone channel to its
/// own receiver, every "glucose cannot be seen" alert reaches the phone path, and the
/// catch-all is inhibited by a specific alert for the same account (and only then).
#[test]
fn alertmanager_routes_every_unseen_glucose_to_the_phone_and_the_watchdog_to_the_heartbeat() {
    let Some(amtool) = tool("amtool") else { return };
    let route = |labels: &[&str]| {
        let mut args = vec![
            "config",
            "routes",
            "test",
            "--config.file=deploy/alertmanager/alertmanager.yml",
        ];
        args.extend_from_slice(labels);
        let (ok, text) = run(&amtool, &args);
        assert!(ok, "{text}");
        // The receiver is the first line (a warning about the URL flag may follow).
        text.lines().next().unwrap_or_default().trim().to_owned()
    };
    assert_eq!(
        route(&["alertname=Watchdog", "severity=none"]),
        "heartbeat,daily-proof"
    );
    assert_eq!(
        route(&[
            "alertname=AlertmanagerNotificationsFailing",
            "severity=critical",
            "integration=pushover"
        ]),
        "notifications-failing"
    );
    for alert in [
        "DexcomSignalLoss",
        "DexcomNoGlucoseValue",
        "DexcomShareLoginFailing",
        "DexcomShareUnavailable",
        "DexcomExporterDown",
    ] {
        for severity in ["warning", "critical"] {
            assert_eq!(
                route(&[
                    &format!("alertname={alert}"),
                    &format!("severity={severity}"),
                    "account=kid"
                ]),
                "glucose-unseen",
                "{alert}"
            );
        }
    }
    assert_eq!(
        route(&[
            "alertname=DexcomGlucoseUrgentLow",
            "severity=critical",
            "account=kid"
        ]),
        "glucose-critical"
    );
    let config: serde_json::Value = serde_saphyr::from_str(
        &std::fs::read_to_string(repo().join("deploy/alertmanager/alertmanager.yml")).unwrap(),
    )
    .unwrap();
    let unseen = config["receivers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "glucose-unseen")
        .unwrap();
    assert!(
        unseen["pushover_configs"].is_array(),
        "a phone, not only a chat"
    );
    let inhibit = config["inhibit_rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["target_matchers"][0] == "alertname=\"DexcomNoGlucoseValue\"")
        .expect("the catch-all is inhibited by the specific alerts");
    let sources = inhibit["source_matchers"][0].as_str().unwrap();
    for specific in [
        "DexcomSignalLoss",
        "DexcomShareLoginFailing",
        "DexcomShareUnavailable",
    ] {
        assert!(sources.contains(specific), "{sources}");
    }
    assert_eq!(inhibit["equal"], serde_json::json!(["account", "instance"]));
}

/// Grafana unit ids the dashboard may use (from Grafana's value formats).
const KNOWN_UNITS: [&str; 8] = [
    "conmgdL",
    "conmmolL",
    "s",
    "percentunit",
    "percent",
    "none",
    "short",
    "dateTimeAsIso",
];

fn all_panels(panels: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    let mut out = Vec::new();
    for panel in panels {
        out.push(panel);
        if let Some(nested) = panel["panels"].as_array() {
            out.extend(all_panels(nested));
        }
    }
    out
}

#[test]
fn grafana_dashboard_lints_clean() {
    let text = std::fs::read_to_string(repo().join("grafana/dexcom.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(dashboard["uid"], "dexcom-exporter");
    assert!(
        dashboard.get("__inputs").is_none(),
        "no __inputs: provisioning cannot resolve them"
    );
    assert!(dashboard["id"].is_null());
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    for name in ["datasource", "job", "instance", "account"] {
        assert!(variables.contains(&name), "missing variable {name}");
    }
    let panels = all_panels(dashboard["panels"].as_array().unwrap());
    let mut ids = HashSet::new();
    let mut exprs = 0;
    for panel in &panels {
        let title = panel["title"].as_str().unwrap_or_default();
        assert!(
            ids.insert(panel["id"].as_u64().expect("numeric id")),
            "duplicate panel id in {title}"
        );
        if panel["type"] == "row" {
            continue;
        }
        assert!(
            !title.is_empty() && panel["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{title}: title and description"
        );
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{title}: panel data source"
        );
        let unit = panel["fieldConfig"]["defaults"]["unit"]
            .as_str()
            .unwrap_or_default();
        assert!(
            KNOWN_UNITS.contains(&unit),
            "{title}: unknown unit {unit:?}"
        );
        let steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
            .as_array()
            .unwrap();
        let values: Vec<f64> = steps
            .iter()
            .skip(1)
            .map(|s| s["value"].as_f64().unwrap())
            .collect();
        assert!(
            steps[0]["value"].is_null() && values.windows(2).all(|w| w[0] < w[1]),
            "{title}: threshold steps ascend"
        );
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no targets");
        for target in targets {
            let expr = target["expr"].as_str().unwrap_or_default();
            assert!(!expr.trim().is_empty(), "{title}: empty expression");
            assert_eq!(
                target["datasource"]["uid"], "${datasource}",
                "{title}: target data source"
            );
            // The pushed per-reading series carry no `instance` (the exporter is not their
            // scrape target); everything else is selected by both.
            let pushed = expr.contains("dexcom:reading") || expr.contains("dexcom_reading_");
            assert!(
                expr.contains("job=~\"$job\"")
                    && expr.contains("instance=~\"$instance\"") != pushed,
                "{title}: {expr} lacks $job/$instance (or filters pushed series by instance)"
            );
            exprs += 1;
        }
    }
    assert!(exprs >= 20, "{exprs} expressions");
    let titles: String = panels
        .iter()
        .filter_map(|p| p["title"].as_str())
        .collect::<Vec<_>>()
        .join("|")
        .to_lowercase();
    for needed in [
        "current glucose",
        "trend",
        "reading age",
        "time in ranges, 24 hours",
        "time in ranges, 14 days",
        "gmi",
        "cv",
        "glucose (mmol/l)",
        "poll errors",
        "logins",
        "share polls",
    ] {
        assert!(titles.contains(needed), "no panel for {needed}");
    }
}

/// The shipped Grafana data source steps no finer than the shipped scrape: its `timeInterval`
/// is the `dexcom` job's scrape interval, and the package installs the provisioning files.
#[test]
fn grafana_data_source_interval_is_the_scrape_interval_and_the_package_ships_it() {
    let setting = |file: &str, key: &str| -> Vec<String> {
        std::fs::read_to_string(repo().join(file))
            .unwrap()
            .lines()
            .filter_map(|l| l.trim().strip_prefix(key))
            .map(|v| v.trim().to_owned())
            .collect()
    };
    let scrape = setting("deploy/prometheus/prometheus.yml", "scrape_interval:");
    assert!(
        !scrape.is_empty() && scrape.iter().all(|s| s == &scrape[0]),
        "{scrape:?}"
    );
    let interval = setting(
        "deploy/grafana/provisioning/datasources/prometheus.yml",
        "timeInterval:",
    );
    assert_eq!(interval, [scrape[0].clone()]);
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    for file in [
        "deploy/grafana/provisioning/dashboards/dexcom.yml",
        "deploy/grafana/provisioning/datasources/prometheus.yml",
        "grafana/dexcom.json",
    ] {
        assert!(
            manifest.contains(&format!(
                "[\"{file}\", \"usr/share/doc/dexcom-exporter/examples/"
            )),
            "{file} is not among the package's assets"
        );
    }
}
