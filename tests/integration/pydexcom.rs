//! Independence check: pydexcom 0.5.1 (installed by `.ci/run` into `.venv`) talks to the
//! `share_simulator` binary and must see exactly what the simulator's generator produced.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use dexcom_exporter::simulator::{AccountSpec, Scenario, Simulator};

const USERNAME: &str = "pydexcom-user";
const PASSWORD: &str = "simulated-password";
const SEED: &str = "7";

struct SimulatorProcess {
    child: Child,
    url: String,
}

impl Drop for SimulatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_simulator(extra: &[&str]) -> SimulatorProcess {
    let mut child = Command::new(env!("CARGO_BIN_EXE_share_simulator"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--username",
            USERNAME,
            "--password",
            PASSWORD,
            "--seed",
            SEED,
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("share_simulator starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("first line");
    let url = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line was {first:?}"))
        .to_owned();
    SimulatorProcess { child, url }
}

fn python() -> Option<PathBuf> {
    if let Ok(explicit) = std::env::var("DEXCOM_TEST_PYTHON") {
        return Some(PathBuf::from(explicit));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    venv.exists().then_some(venv)
}

fn run_pydexcom(args: &[&str]) -> Option<serde_json::Value> {
    let Some(python) = python() else {
        assert!(
            !crate::common::in_ci(),
            "pydexcom venv missing: .ci/run must create .venv with pydexcom"
        );
        eprintln!("SKIPPED outside CI: no .venv with pydexcom; run .ci/run once");
        return None;
    };
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/integration/pydexcom_check.py");
    let output = Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "pydexcom_check failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(serde_json::from_slice(&output.stdout).expect("JSON from pydexcom_check"))
}

fn base_url(sim: &SimulatorProcess) -> String {
    format!("{}/ShareWebServices/Services/", sim.url)
}

fn truth() -> std::sync::Arc<Simulator> {
    Simulator::new(Scenario {
        seed: SEED.parse().unwrap(),
        accounts: vec![AccountSpec::new(USERNAME, PASSWORD)],
        ..Scenario::default()
    })
    .unwrap()
}

#[test]
fn pydexcom_reads_what_the_simulator_served() {
    let sim = spawn_simulator(&[]);
    let Some(out) = run_pydexcom(&["read", &base_url(&sim), USERNAME, PASSWORD]) else {
        return;
    };
    assert_eq!(out["error"], serde_json::Value::Null, "{out}");
    let readings = out["readings"].as_array().expect("readings");
    assert_eq!(readings.len(), 12, "an hour of readings: {out}");
    let truth = truth();
    for reading in readings {
        let ms = reading["ms"].as_i64().unwrap();
        let served = truth
            .reading_at(USERNAME, ms)
            .unwrap_or_else(|| panic!("{ms} is not a sensor time of the generator"));
        assert_eq!(
            reading["value"].as_u64(),
            Some(u64::from(served.mg_per_dl)),
            "{reading}"
        );
        assert_eq!(
            reading["trend"].as_u64(),
            Some(u64::from(served.trend.code())),
            "{reading}"
        );
        let mmol = dexcom_exporter::share::mg_per_dl_to_mmol_per_l(served.mg_per_dl);
        assert_eq!(
            reading["mmol_l"].as_f64(),
            Some(mmol),
            "same mmol/L rounding: {reading}"
        );
    }
    assert_eq!(out["latest"]["ms"], readings[0]["ms"]);
}

#[test]
fn pydexcom_logs_in_by_account_id() {
    let sim = spawn_simulator(&[]);
    let id = AccountSpec::new(USERNAME, PASSWORD)
        .effective_account_id()
        .to_string();
    let Some(out) = run_pydexcom(&["account-id", &base_url(&sim), "-", PASSWORD, &id]) else {
        return;
    };
    assert_eq!(out["error"], serde_json::Value::Null, "{out}");
    assert!(out["latest"]["value"].as_u64().is_some(), "{out}");
}

#[test]
fn pydexcom_raises_account_error_on_a_bad_password() {
    let sim = spawn_simulator(&[]);
    let Some(out) = run_pydexcom(&["bad-password", &base_url(&sim), USERNAME, "not-it"]) else {
        return;
    };
    assert_eq!(out["error"], "AccountError", "{out}");
    assert_eq!(out["message"], "Failed to authenticate", "{out}");
}

#[test]
fn pydexcom_raises_session_error_on_an_expired_session() {
    // Sessions that expire at once: pydexcom's one re-login gets another dead session.
    let sim = spawn_simulator(&["--session-ttl", "1ms"]);
    let Some(out) = run_pydexcom(&["expired-session", &base_url(&sim), USERNAME, PASSWORD]) else {
        return;
    };
    assert_eq!(out["error"], "SessionError", "{out}");
    assert_eq!(out["message"], "Session not active or timed out", "{out}");
}
