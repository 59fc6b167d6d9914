//! Compiles the bundled rule files (`rules/*.yml`, not their `_test.yml`
//! unit tests) into the binary, so that `hourglass run` with no
//! configuration evaluates them.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=rules");
    let mut files: Vec<String> = std::fs::read_dir("rules")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".yml") && !n.ends_with("_test.yml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut src = String::from("&[\n");
    for f in &files {
        let _ = writeln!(
            src,
            "    (\"rules/{f}\", include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/rules/{f}\"))),"
        );
    }
    src.push(']');
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into()));
    if let Err(e) = std::fs::write(out.join("bundled_rules.rs"), src) {
        panic!("cannot write bundled_rules.rs: {e}");
    }
}
