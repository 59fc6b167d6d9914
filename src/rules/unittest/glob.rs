//! `rule_files` globs of a test file, through the `glob` crate: `*`, `?`
//! and `[...]` within one path component, matches sorted, a pattern without
//! meta characters matching the path if it exists, as Go's `filepath.Glob`
//! (which promtool uses) does for the patterns rule files use.

use std::path::{Path, PathBuf};

/// The paths matching `pattern`; an error only for a malformed pattern.
pub fn glob(pattern: &Path) -> Result<Vec<PathBuf>, String> {
    let text = pattern.to_string_lossy();
    let opts = ::glob::MatchOptions {
        // Go's `*` matches a leading dot too.
        require_literal_leading_dot: false,
        ..::glob::MatchOptions::new()
    };
    let paths = ::glob::glob_with(&text, opts)
        .map_err(|e| format!("syntax error in pattern: {}", e.msg))?;
    Ok(paths.filter_map(Result::ok).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_list_sorted_matches_and_existing_plain_paths() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b.yml", "a.yml", "c.txt", ".h.yml"] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/d.yml"), "").unwrap();
        let got = glob(&dir.path().join("*.yml")).unwrap();
        assert_eq!(
            got,
            vec![
                dir.path().join(".h.yml"),
                dir.path().join("a.yml"),
                dir.path().join("b.yml")
            ]
        );
        let got = glob(&dir.path().join("s*/*.yml")).unwrap();
        assert_eq!(got, vec![dir.path().join("sub/d.yml")]);
        assert_eq!(glob(&dir.path().join("c.txt")).unwrap().len(), 1);
        assert!(glob(&dir.path().join("missing.yml")).unwrap().is_empty());
        assert!(glob(&dir.path().join("nodir/*.yml")).unwrap().is_empty());
        assert!(glob(&dir.path().join("[")).is_err());
    }
}
