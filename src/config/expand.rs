//! `${VAR}` expansion in configuration text, done before YAML parsing so that
//! line numbers in later errors still match the file (a variable's value may
//! not contain a newline for the same reason).

/// An expansion error at a place in the text (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Replaces every `${NAME}` with `lookup(NAME)`; `$$` stands for a literal `$`,
/// and any other `$` is kept as it is. An unset variable, a value with a
/// newline, or an unclosed `${` is an error. YAML comments are left alone, so
/// that a commented-out example does not need its variables set.
pub fn expand_env(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(text.len());
    for (lineno, full) in text.split_inclusive('\n').enumerate() {
        let (line, comment) = full.split_at(comment_start(full));
        let mut rest = line;
        let mut col = 1;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            col += rest[..i].chars().count();
            let after = &rest[i + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
                col += 2;
            } else if let Some(tail) = after.strip_prefix('{') {
                let err = |message: String| ExpandError {
                    line: lineno + 1,
                    column: col,
                    message,
                };
                let end = tail
                    .find('}')
                    .ok_or_else(|| err("unclosed \"${\" (write $$ for a literal $)".into()))?;
                let name = &tail[..end];
                let valid =
                    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    return Err(err(format!("invalid variable name {name:?} in ${{...}}")));
                }
                let value = lookup(name)
                    .ok_or_else(|| err(format!("environment variable {name} is not set")))?;
                if value.contains('\n') {
                    return Err(err(format!(
                        "environment variable {name} contains a newline; use a *_file field for multi-line values"
                    )));
                }
                out.push_str(&value);
                col += name.chars().count() + 3;
                rest = &tail[end + 1..];
            } else {
                out.push('$');
                rest = after;
                col += 1;
            }
        }
        out.push_str(rest);
        out.push_str(comment);
    }
    Ok(out)
}

/// Where a YAML comment starts on a line (its length when there is none): a
/// `#` at the start or after white space, outside quotes.
fn comment_start(line: &str) -> usize {
    let (mut single, mut double, mut prev_space) = (false, false, true);
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            '#' if !single && !double && prev_space => return i,
            '\'' if !double => single = !single,
            '"' if !single && !escaped => double = !double,
            _ => {}
        }
        escaped = double && c == '\\' && !escaped;
        prev_space = c.is_whitespace();
    }
    line.len()
}
