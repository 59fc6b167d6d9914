//! promtool compatibility: the rule unit tests in `tests/rules/` (each also
//! passes with the real `promtool test rules`), and the `test rules` and
//! `check rules` commands of the real binary, whose output and exit codes
//! follow promtool's.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rules")
}

fn hourglass(args: &[&str], files: &[PathBuf]) -> Output {
    common::hourglass(args)
        .args(files)
        .output()
        .expect("run the hourglass binary")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn every_rule_test_file_passes() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(rules_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("_test.yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "{files:?}");
    let mut out = Vec::new();
    let ok = hourglass::rules::unittest::run_test_files(&files, &mut out).unwrap();
    let out = text(&out);
    assert!(ok, "{out}");
    assert_eq!(out.matches("  SUCCESS\n").count(), files.len(), "{out}");
}

/// The bundled rules in `rules/` (compiled into the agent) pass their own
/// unit tests, and `check rules` finds them all valid.
#[test]
fn bundled_rules_pass_their_tests() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let mut tests: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("_test.yml"))
        .collect();
    tests.sort();
    // Every bundled rule file has its test beside it.
    for (name, _) in hourglass::rules::bundled::BUNDLED {
        let test = Path::new(env!("CARGO_MANIFEST_DIR")).join(name.replace(".yml", "_test.yml"));
        assert!(tests.contains(&test), "{name} has no unit test");
    }
    assert!(tests.len() >= 7, "{tests:?}");
    let mut out = Vec::new();
    let ok = hourglass::rules::unittest::run_test_files(&tests, &mut out).unwrap();
    let out = text(&out);
    assert!(ok, "{out}");
    assert_eq!(out.matches("  SUCCESS\n").count(), tests.len(), "{out}");
}

#[test]
fn test_rules_passes_with_exit_0() {
    let o = hourglass(&["test", "rules"], &[rules_dir().join("for_zero_test.yml")]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let stdout = text(&o.stdout);
    assert!(stdout.starts_with("Unit Testing:  "), "{stdout}");
    assert!(
        stdout.ends_with("for_zero_test.yml\n  SUCCESS\n\n"),
        "{stdout}"
    );
    assert!(o.stderr.is_empty(), "{}", text(&o.stderr));
}

#[test]
fn test_rules_failures_read_like_promtools_with_exit_1() {
    let dir = rules_dir().join("failing");
    let o = hourglass(&["test", "rules"], &[dir.join("wrong_test.yml")]);
    assert_eq!(o.status.code(), Some(1));
    let stderr = text(&o.stderr);
    // The diff of expected and actual alerts, and of samples.
    assert!(
        stderr.contains(
            "    alertname: InstanceDown, time: 1m, \n        exp:[\n            0:\n              \
             Labels:{alertname=\"InstanceDown\", instance=\"a:9100\", job=\"api\", severity=\"ticket\"}"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("        got:[\n            0:\n              Labels:{alertname=\"InstanceDown\", instance=\"a:9100\", job=\"api\", severity=\"page\"}"),
        "{stderr}"
    );
    assert!(
        stderr.contains("    expr: \"sum(up)\", time: 0s,\n        exp: {} 1E-01, {job=\"api\"} 2E+00\n        got: {} 0E+00\n"),
        "{stderr}"
    );
    // Byte for byte what promtool 2.42 printed for the same file
    // (`promtool test rules wrong_test.yml 2> wrong_test.promtool.stderr`).
    let promtool = std::fs::read_to_string(dir.join("wrong_test.promtool.stderr")).unwrap();
    assert_eq!(stderr, promtool);
    // stdout has the header and one blank line per failure, then one more.
    let stdout = text(&o.stdout);
    assert!(stdout.starts_with("Unit Testing:  "), "{stdout}");
    assert!(
        stdout.ends_with("wrong_test.yml\n\n\n\n\n\n\n\n\n\n"),
        "{stdout:?}"
    );
}

#[test]
fn test_rules_run_selects_test_groups() {
    let f = rules_dir().join("failing/wrong_test.yml");
    // Only the unnamed group, which fails too; then a name matching nothing.
    let o = hourglass(&["test", "rules", "--run", "^$"], std::slice::from_ref(&f));
    assert_eq!(o.status.code(), Some(1));
    assert!(!text(&o.stderr).contains("name: wrong expectations"));
    let o = hourglass(&["test", "rules", "--run", "no such test"], &[f]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
}

#[test]
fn test_rules_reports_a_missing_file() {
    let o = hourglass(&["test", "rules"], &[rules_dir().join("no_such_test.yml")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("no_such_test.yml: cannot read test file"));
}

#[test]
fn check_rules_counts_rules_of_good_files() {
    let files = [
        rules_dir().join("for_zero.yml"),
        rules_dir().join("recording_chain.yml"),
    ];
    let o = hourglass(&["check", "rules"], &files);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let stdout = text(&o.stdout);
    assert!(
        stdout.contains("for_zero.yml\n  SUCCESS: 1 rules found\n\nChecking "),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("recording_chain.yml\n  SUCCESS: 4 rules found\n\n"),
        "{stdout}"
    );
}

#[test]
fn check_rules_reports_file_and_line_with_exit_1() {
    let broken = rules_dir().join("failing/broken.yml");
    let o = hourglass(
        &["check", "rules"],
        &[broken.clone(), rules_dir().join("for_zero.yml")],
    );
    assert_eq!(o.status.code(), Some(1));
    let stderr = text(&o.stderr);
    let name = broken.display().to_string();
    assert!(stderr.starts_with("  FAILED:\n"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{name}:9: group \"broken\", rule 2, \"BadExpr\": could not parse expression"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{name}:13: group \"broken\", rule 4, \"BadFor\": invalid 'for'"
        )),
        "{stderr}"
    );
    // The good file after it is still checked.
    assert!(text(&o.stdout).contains("  SUCCESS: 1 rules found"));
}
