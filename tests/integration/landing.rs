//! The landing page in a real browser: headless Chromium (Debian's `chromium`) renders it with
//! its Content-Security-Policy in force (no JavaScript, nothing external, so nothing refused),
//! shows every account's glucose in both units with its trend, range and chart, and keeps a
//! hostile account name as text. The screenshot is kept in `target/test-artifacts/`.

use std::time::Duration;

use dexcom_exporter::simulator::{AccountSpec, GlucoseProfile};

use crate::common::{get_until, repo, tool};
use crate::harness::{AppOptions, TestApp};

const HOSTILE: &str = "<b>kid</b> & \"co\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_renders_the_landing_page_with_values_units_and_charts() {
    let Some(chromium) = tool("chromium") else {
        return;
    };
    let mut options = AppOptions::new(Duration::from_millis(500), &[]);
    options.scenario.accounts = vec![
        AccountSpec {
            profile: GlucoseProfile::OvernightLow,
            ..AccountSpec::new("kid@example.com", "pw-kid")
        },
        AccountSpec {
            profile: GlucoseProfile::RunsHigh,
            ..AccountSpec::new("teen@example.com", "pw-teen")
        },
    ];
    options.args = Box::new(|base, dir| {
        let kid = dir.join("kid.pw");
        let teen = dir.join("teen.pw");
        std::fs::write(&kid, "pw-kid\n").unwrap();
        std::fs::write(&teen, "pw-teen\n").unwrap();
        let config = dir.join("accounts.yml");
        std::fs::write(
            &config,
            format!(
                "accounts:\n  - name: '{}'\n    username: kid@example.com\n    password_file: {}\n    base_url: {base}\n  - name: teen\n    username: teen@example.com\n    password_file: {}\n    base_url: {base}\n",
                HOSTILE.replace('\'', "''"),
                kid.display(),
                teen.display()
            ),
        )
        .unwrap();
        vec![
            "--config.file".into(),
            config.display().to_string(),
            "--dexcom.reading-interval".into(),
            "500ms".into(),
            "--glucose.max-age".into(),
            "10s".into(),
        ]
    });
    let app = TestApp::start_with(options).await;
    get_until(&app.url("/metrics"), Duration::from_secs(10), |scrape| {
        let shown = scrape
            .lines()
            .filter(|l| l.starts_with("dexcom_glucose_mg_per_dl{"))
            .count();
        (shown == 2).then_some(())
    })
    .await;

    let response = reqwest::get(app.url("/")).await.unwrap();
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    let page = response.text().await.unwrap();
    assert!(!page.contains("<b>kid"), "the name is escaped: {page}");
    assert!(page.contains("&lt;b&gt;kid&lt;/b&gt; &amp; &quot;co&quot;"));
    assert!(!page.contains("<script"), "no JavaScript");
    assert_eq!(page.matches("<svg").count(), 2, "a chart per account");

    // The DOM as Chromium built it, and its console (a CSP refusal would be logged there).
    let dom = std::process::Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
        ])
        .arg(app.url("/"))
        .output()
        .unwrap();
    let html = String::from_utf8_lossy(&dom.stdout);
    let console = String::from_utf8_lossy(&dom.stderr);
    assert!(dom.status.success(), "{console}");
    assert!(
        !console.contains("Refused to"),
        "CSP refused something: {console}"
    );
    assert!(!html.contains("<b>kid"), "no element from the name: {html}");
    assert_eq!(
        html.matches("<span class=\"unit\">mg/dL</span>").count(),
        2,
        "a value per account: {html}"
    );
    assert_eq!(html.matches("mmol/L").count(), 2, "{html}");
    assert_eq!(
        html.matches("Dexcom connection: working").count(),
        2,
        "{html}"
    );
    assert!(
        ["URGENT LOW", "below range", "in range", "above range"]
            .iter()
            .any(|band| html.contains(band)),
        "no range named on the page: {html}"
    );
    // One meaning of in range, the alert thresholds as alerts, a time axis, a parent's words.
    assert_eq!(html.matches("(70–180)").count(), 2, "{html}");
    assert!(html.contains("In range means 70–180 mg/dL"), "{html}");
    assert_eq!(html.matches(">alert 55<").count(), 2, "{html}");
    assert_eq!(html.matches(">now</text>").count(), 2, "{html}");
    // 36 readings at the 500 ms cadence: the axis spans 18 s.
    assert_eq!(html.matches(">18 s ago</text>").count(), 2, "{html}");
    for gone in ["Share polling", "Readiness", ">Simulated<", ">simulated<"] {
        assert!(!html.contains(gone), "{gone:?} on the page: {html}");
    }
    screenshot_checked(&chromium, &app.url("/")).await;
    app.stop().await;
}

/// Takes the screenshot kept as the test's artifact and checks it is a real PNG.
async fn screenshot_checked(chromium: &std::path::Path, url: &str) {
    let artifacts = repo().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let png = artifacts.join("landing.png");
    let _ = std::fs::remove_file(&png);
    let shot = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1100,800",
        ])
        .arg(format!("--screenshot={}", png.display()))
        .arg(url)
        .output()
        .unwrap();
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert!(
        bytes.len() > 10_000,
        "a rendered page, not a blank: {} bytes",
        bytes.len()
    );
    eprintln!("screenshot: {} ({} bytes)", png.display(), bytes.len());
}
