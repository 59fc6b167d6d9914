//! `rule_files` globs, expanded the way Go's `filepath.Glob` does (which is
//! what promtool uses): `*`, `?` and `[...]` match within one path
//! component, matches are sorted within each directory, a pattern without
//! meta characters matches the path if it exists, an unreadable directory
//! matches nothing. No `**`.

use std::path::{Path, PathBuf};

/// The paths matching `pattern`; an error only for a malformed pattern.
pub fn glob(pattern: &Path) -> Result<Vec<PathBuf>, String> {
    let text = pattern.to_string_lossy();
    if !has_meta(&text) {
        return Ok(if std::fs::symlink_metadata(pattern).is_ok() {
            vec![pattern.to_path_buf()]
        } else {
            Vec::new()
        });
    }
    let (dir, file) = match text.rfind('/') {
        Some(0) => ("/".to_string(), text[1..].to_string()),
        Some(i) => (text[..i].to_string(), text[i + 1..].to_string()),
        None => (String::new(), text.to_string()),
    };
    let pat = Pattern::parse(&file)?;
    let dirs = if has_meta(&dir) {
        glob(Path::new(&dir))?
    } else {
        vec![PathBuf::from(&dir)]
    };
    let mut out = Vec::new();
    for d in dirs {
        let listing = if d.as_os_str().is_empty() {
            std::fs::read_dir(".")
        } else {
            std::fs::read_dir(&d)
        };
        let Ok(entries) = listing else { continue };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| pat.matches(n))
            .collect();
        names.sort();
        out.extend(names.into_iter().map(|n| d.join(n)));
    }
    Ok(out)
}

fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', '\\'])
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Char(char),
    Any,
    Star,
    /// `[...]`: negated, and inclusive ranges.
    Class(bool, Vec<(char, char)>),
}

/// One path component's pattern, parsed (and so checked) up front.
#[derive(Debug, Clone)]
pub struct Pattern {
    tokens: Vec<Token>,
}

impl Pattern {
    pub fn parse(s: &str) -> Result<Pattern, String> {
        let bad = || format!("syntax error in pattern {s:?}");
        let mut tokens = Vec::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' => Token::Star,
                '?' => Token::Any,
                '\\' => Token::Char(chars.next().ok_or_else(bad)?),
                '[' => {
                    let neg = chars.next_if_eq(&'^').is_some();
                    let mut ranges = Vec::new();
                    loop {
                        let lo = match chars.next().ok_or_else(bad)? {
                            ']' if !ranges.is_empty() => break,
                            '\\' => chars.next().ok_or_else(bad)?,
                            ']' | '-' => return Err(bad()),
                            c => c,
                        };
                        let hi = if chars.next_if_eq(&'-').is_some() {
                            match chars.next().ok_or_else(bad)? {
                                '\\' => chars.next().ok_or_else(bad)?,
                                ']' | '-' => return Err(bad()),
                                c => c,
                            }
                        } else {
                            lo
                        };
                        if hi < lo {
                            return Err(bad());
                        }
                        ranges.push((lo, hi));
                    }
                    Token::Class(neg, ranges)
                }
                c => Token::Char(c),
            });
        }
        Ok(Pattern { tokens })
    }

    /// Whether the whole of `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        let one = |t: &Token, c: char| match t {
            Token::Char(p) => *p == c,
            Token::Any => c != '/',
            Token::Class(neg, ranges) => {
                c != '/' && ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *neg
            }
            Token::Star => false,
        };
        // Classic backtracking over the last star: linear in practice.
        let (mut t, mut n) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while n < name.len() {
            match self.tokens.get(t) {
                Some(Token::Star) => {
                    star = Some((t, n));
                    t += 1;
                }
                Some(tok) if one(tok, name[n]) => {
                    t += 1;
                    n += 1;
                }
                _ => match star {
                    Some((st, sn)) if name[sn] != '/' => {
                        star = Some((st, sn + 1));
                        t = st + 1;
                        n = sn + 1;
                    }
                    _ => return false,
                },
            }
        }
        self.tokens[t..].iter().all(|t| *t == Token::Star)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, n: &str) -> bool {
        Pattern::parse(p).unwrap().matches(n)
    }

    #[test]
    fn patterns_match_like_go() {
        assert!(m("*.yml", "a.yml"));
        assert!(m("*.yml", ".hidden.yml"), "Go's * matches a leading dot");
        assert!(!m("*.yml", "a.yaml"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[^a-c]x", "bx"));
        assert!(m("[^a-c]x", "dx"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m(r"\*", "*"));
        assert!(m("*", ""));
        for bad in ["[", "[]", "[a-", "a\\", "[z-a]"] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn globs_list_sorted_matches_and_existing_plain_paths() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b.yml", "a.yml", "c.txt"] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/d.yml"), "").unwrap();
        let got = glob(&dir.path().join("*.yml")).unwrap();
        assert_eq!(
            got,
            vec![dir.path().join("a.yml"), dir.path().join("b.yml")]
        );
        let got = glob(&dir.path().join("s*/*.yml")).unwrap();
        assert_eq!(got, vec![dir.path().join("sub/d.yml")]);
        assert_eq!(glob(&dir.path().join("c.txt")).unwrap().len(), 1);
        assert!(glob(&dir.path().join("missing.yml")).unwrap().is_empty());
        assert!(glob(&dir.path().join("nodir/*.yml")).unwrap().is_empty());
        assert!(glob(&dir.path().join("[.yml")).is_err());
    }
}
