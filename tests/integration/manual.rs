//! The man page and the shell completions, generated from the clap definitions and shipped in
//! the package: the committed files must be what the current command line generates. To
//! regenerate them after changing a flag: `DEXCOM_EXPORTER_REGENERATE=1 cargo test manual`.

use clap::CommandFactory;

use crate::common::repo;

/// What each shipped file should hold now.
fn generated() -> Vec<(&'static str, Vec<u8>)> {
    let command = || dexcom_exporter::config::Cli::command();
    let mut man = Vec::new();
    clap_mangen::Man::new(command()).render(&mut man).unwrap();
    let completion = |shell: clap_complete::Shell| {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut command(), "dexcom_exporter", &mut out);
        out
    };
    vec![
        ("packaging/man/dexcom_exporter.1", man),
        (
            "packaging/completions/dexcom_exporter.bash",
            completion(clap_complete::Shell::Bash),
        ),
        (
            "packaging/completions/_dexcom_exporter",
            completion(clap_complete::Shell::Zsh),
        ),
        (
            "packaging/completions/dexcom_exporter.fish",
            completion(clap_complete::Shell::Fish),
        ),
    ]
}

#[test]
fn the_man_page_and_completions_are_generated_from_the_command_line() {
    let regenerate = std::env::var_os("DEXCOM_EXPORTER_REGENERATE").is_some();
    for (path, expected) in generated() {
        let path = repo().join(path);
        if regenerate {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &expected).unwrap();
            continue;
        }
        let shipped = std::fs::read(&path).unwrap_or_default();
        assert!(
            shipped == expected,
            "{} is not what the command line generates: DEXCOM_EXPORTER_REGENERATE=1 cargo test manual",
            path.display()
        );
    }
    let man =
        String::from_utf8(std::fs::read(repo().join("packaging/man/dexcom_exporter.1")).unwrap())
            .unwrap();
    for needed in ["check", "backfill", "\\-\\-storage.path", "Exit codes"] {
        assert!(man.contains(needed), "the man page lacks {needed}");
    }
}

/// The page as `man` shows it: rendered by groff without a warning.
#[test]
fn the_man_page_renders() {
    let Some(man) = crate::common::tool("man") else {
        return;
    };
    let output = std::process::Command::new(man)
        .args(["-P", "cat", "-l"])
        .arg(repo().join("packaging/man/dexcom_exporter.1"))
        .env("MANWIDTH", "80")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("dexcom_exporter") && text.contains("--web.listen-address"),
        "{text}"
    );
}
