//! The Kubernetes manifests in `deploy/kubernetes/`, checked offline: the core resources by
//! `kubernetes-validate --strict` (from PyPI, in `.venv`), the StatefulSet's flags by the
//! exporter's own command-line parser, its shard count against its replicas, and the
//! PrometheusRule against `alerts.yml` (the same groups, and `promtool check rules` passes).

use std::path::PathBuf;
use std::process::Command;

use crate::common::{in_ci, repo, tool};

fn kubernetes_validate() -> Option<PathBuf> {
    let venv = repo().join(".venv/bin/kubernetes-validate");
    if venv.exists() {
        return Some(venv);
    }
    tool("kubernetes-validate")
}

fn yaml(path: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(repo().join(path)).unwrap();
    text.split("\n---\n")
        .map(|doc| serde_saphyr::from_str::<serde_json::Value>(doc).unwrap())
        .collect()
}

#[test]
fn core_manifests_pass_kubernetes_validate_strict() {
    let Some(validate) = kubernetes_validate() else {
        assert!(
            !in_ci(),
            "kubernetes-validate is required in CI; .ci/run installs it"
        );
        return;
    };
    let output = Command::new(validate)
        .arg("--strict")
        .arg(repo().join("deploy/kubernetes/dexcom-exporter.yaml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    for kind in [
        "secret",
        "configmap",
        "service",
        "statefulset",
        "networkpolicy",
    ] {
        assert!(
            text.contains(&format!("passed for resource {kind}/")),
            "{kind} not validated: {text}"
        );
    }
    assert!(!text.contains("ERROR"), "{text}");
}

#[test]
fn the_statefulset_runs_the_exporter_with_flags_it_accepts_one_shard_per_replica() {
    use clap::Parser;
    let docs = yaml("deploy/kubernetes/dexcom-exporter.yaml");
    let set = docs
        .iter()
        .find(|d| d["kind"] == "StatefulSet")
        .expect("a StatefulSet");
    let container = &set["spec"]["template"]["spec"]["containers"][0];
    let mut argv = vec!["dexcom_exporter".to_owned()];
    argv.extend(
        container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned()),
    );
    dexcom_exporter::config::Cli::try_parse_from(&argv).expect("the exporter accepts these flags");
    let env = container["env"].as_array().unwrap();
    let var = |name: &str| env.iter().find(|e| e["name"] == name).cloned().unwrap();
    assert_eq!(
        var("DEXCOM_EXPORTER_SHARD_INDEX")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.labels['apps.kubernetes.io/pod-index']"
    );
    assert_eq!(
        var("DEXCOM_EXPORTER_SHARD_COUNT")["value"]
            .as_str()
            .unwrap(),
        set["spec"]["replicas"].to_string(),
        "the shard count equals the replicas"
    );
    // The state survives pod restarts, and passwords arrive as files.
    assert!(argv.iter().any(|a| a.starts_with("--storage.path=")));
    assert_eq!(
        set["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
        "state"
    );
    let config = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    let accounts: serde_json::Value =
        serde_saphyr::from_str(config["data"]["config.yml"].as_str().unwrap()).unwrap();
    let secret = docs.iter().find(|d| d["kind"] == "Secret").unwrap();
    for account in accounts["accounts"].as_array().unwrap() {
        let file = account["password_file"].as_str().unwrap();
        let key = file
            .strip_prefix("/etc/dexcom_exporter/passwords/")
            .expect("password files from the mounted Secret");
        assert!(
            secret["stringData"].get(key).is_some(),
            "the Secret has no key {key}"
        );
    }
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
}

#[test]
fn the_prometheus_rule_is_made_from_alerts_yml_and_checks() {
    let rule = yaml("deploy/kubernetes/prometheusrule.yaml").remove(0);
    assert_eq!(rule["kind"], "PrometheusRule");
    let alerts = yaml("deploy/prometheus/alerts.yml").remove(0);
    assert_eq!(
        rule["spec"]["groups"], alerts["groups"],
        "run deploy/kubernetes/make-prometheusrule.sh after changing alerts.yml"
    );
    let monitor = yaml("deploy/kubernetes/servicemonitor.yaml").remove(0);
    assert_eq!(monitor["kind"], "ServiceMonitor");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(
        monitor["spec"]["endpoints"][0]["relabelings"][0]["replacement"], "dexcom",
        "job=\"dexcom\", as the rules and dashboard expect"
    );
    let Some(promtool) = tool("promtool") else {
        return;
    };
    // The rule groups as a rules file: the spec's lines, two spaces less indented.
    let text =
        std::fs::read_to_string(repo().join("deploy/kubernetes/prometheusrule.yaml")).unwrap();
    let groups: String = text
        .lines()
        .skip_while(|l| *l != "spec:")
        .skip(1)
        .map(|l| l.strip_prefix("  ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let dir = std::env::temp_dir().join(format!("k8s-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rules.yml");
    std::fs::write(&file, groups + "\n").unwrap();
    let output = Command::new(promtool)
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The NetworkPolicy lets in only Prometheus from one named namespace (not a pod labelled like
/// it anywhere) and lets out only DNS, HTTPS and the in-cluster receiver's port; the values to
/// adapt are written once (YAML anchors) and named in the comment above.
#[test]
fn the_network_policy_admits_prometheus_of_one_namespace_and_lets_out_only_what_is_needed() {
    let docs = yaml("deploy/kubernetes/dexcom-exporter.yaml");
    let policy = docs.iter().find(|d| d["kind"] == "NetworkPolicy").unwrap();
    let spec = &policy["spec"];
    assert_eq!(
        spec["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    for from in spec["ingress"][0]["from"].as_array().unwrap() {
        let namespaces = &from["namespaceSelector"]["matchLabels"];
        assert!(
            namespaces["kubernetes.io/metadata.name"].is_string(),
            "a named namespace, not any: {from}"
        );
        assert!(from["podSelector"]["matchLabels"].is_object());
    }
    let egress = spec["egress"].as_array().unwrap();
    let ports: Vec<i64> = egress
        .iter()
        .flat_map(|rule| rule["ports"].as_array().unwrap().iter())
        .map(|p| p["port"].as_i64().unwrap())
        .collect();
    for needed in [53, 443, 8080] {
        assert!(
            ports.contains(&needed),
            "egress to port {needed}: {ports:?}"
        );
    }
    // The in-cluster receiver is reached in the same namespace Prometheus scrapes from.
    let receiver = egress
        .iter()
        .find(|rule| rule["ports"][0]["port"] == 8080)
        .unwrap();
    assert_eq!(
        receiver["to"][0]["namespaceSelector"]["matchLabels"],
        spec["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]
    );
    let text =
        std::fs::read_to_string(repo().join("deploy/kubernetes/dexcom-exporter.yaml")).unwrap();
    assert_eq!(
        text.matches("kubernetes.io/metadata.name: monitoring")
            .count(),
        1,
        "the namespace is written once"
    );
}

/// Kubernetes mounts the Secret with `defaultMode` plus group read for the pod's `fsGroup`;
/// the exporter must not warn about a file only the pod's own user and group can read (it
/// would on every start), and still warn about one everyone can read.
#[test]
fn the_secrets_file_mode_under_fs_group_draws_no_warning() {
    let docs = yaml("deploy/kubernetes/dexcom-exporter.yaml");
    let set = docs.iter().find(|d| d["kind"] == "StatefulSet").unwrap();
    let pod = &set["spec"]["template"]["spec"];
    assert_eq!(
        pod["securityContext"]["fsGroup"], pod["securityContext"]["runAsGroup"],
        "the fsGroup is the pod's own group"
    );
    assert!(
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["secret"]["defaultMode"].is_number())
    );
    // As Kubernetes reads it (YAML 1.1: a leading 0 is octal), from the file's text.
    let text =
        std::fs::read_to_string(repo().join("deploy/kubernetes/dexcom-exporter.yaml")).unwrap();
    let written = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("defaultMode:"))
        .unwrap()
        .trim();
    let default_mode = u32::from_str_radix(written.trim_start_matches("0o"), 8).unwrap();
    assert_eq!(default_mode, 0o400, "{written}");
    // As the kubelet leaves it: group-readable, owned by the fsGroup (here: our own group).
    let mounted = default_mode | 0o040;
    let dir = crate::harness::ScratchDir::new();
    let path = dir.path().join("camper-001");
    std::fs::write(&path, "secret\n").unwrap();
    let warns = |mode: u32| {
        crate::common::password_file_log(&path, mode).contains("can be read by other users")
    };
    assert!(!warns(mounted), "mode {mounted:o} under fsGroup");
    assert!(warns(0o444), "a world-readable file is still warned about");
}
