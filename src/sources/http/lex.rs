//! The tokens of an exposition line: names, label pairs, blank-separated
//! words. Positions are byte offsets into the line; everything scanned for
//! is ASCII, so offsets always fall on character boundaries.

/// A line's outcome; the error is the message, the caller adds the line number.
pub type LineResult<T> = Result<T, String>;

pub struct ScannedLabel {
    pub name: (usize, usize),
    /// The raw value between the quotes.
    pub value: (usize, usize),
    pub escaped: bool,
    /// Where scanning goes on (after a `,` if there was one).
    pub next: usize,
}

pub enum LabelScan {
    Label(ScannedLabel),
    /// The `}` was found; scanning goes on here.
    End(usize),
}

/// Scans one `name="value"` of a label set (or its closing `}`), allowing a
/// trailing comma and blanks around tokens as Prometheus's text parser does.
pub fn scan_label(line: &str, i: usize) -> LineResult<LabelScan> {
    let b = line.as_bytes();
    let mut i = skip_blank(b, i);
    match b.get(i) {
        None => return Err(format!("unclosed label set in {:?}", snippet(line))),
        Some(b'}') => return Ok(LabelScan::End(i + 1)),
        _ => {}
    }
    let ns = i;
    i = scan_label_name(b, i);
    if i == ns {
        return Err(format!(
            "expected a label name, got {:?} in {:?}",
            snippet(&line[ns..]),
            snippet(line)
        ));
    }
    let name = (ns, i);
    i = skip_blank(b, i);
    if b.get(i) != Some(&b'=') {
        return Err(format!(
            "expected = after label {} in {:?}",
            &line[ns..name.1],
            snippet(line)
        ));
    }
    i = skip_blank(b, i + 1);
    if b.get(i) != Some(&b'"') {
        return Err(format!(
            "expected \" to open the value of label {} in {:?}",
            &line[ns..name.1],
            snippet(line)
        ));
    }
    i += 1;
    let vs = i;
    let mut escaped = false;
    while i < b.len() && b[i] != b'"' {
        if b[i] == b'\\' {
            escaped = true;
            i += 1;
        }
        i += 1;
    }
    if i >= b.len() {
        return Err(format!(
            "unterminated value of label {} in {:?}",
            &line[ns..name.1],
            snippet(line)
        ));
    }
    let value = (vs, i);
    i = skip_blank(b, i + 1);
    match b.get(i) {
        Some(b',') => i += 1,
        Some(b'}') => {}
        _ => {
            return Err(format!(
                "expected , or }} after the value of label {} in {:?}",
                &line[ns..name.1],
                snippet(line)
            ))
        }
    }
    Ok(LabelScan::Label(ScannedLabel {
        name,
        value,
        escaped,
        next: i,
    }))
}

/// Appends `raw` to `out` with `\\`, `\"` and `\n` unescaped; any other
/// escape is kept as written, as Prometheus does.
pub fn unescape(raw: &str, out: &mut String) {
    let mut rest = raw;
    while let Some(p) = rest.find('\\') {
        out.push_str(&rest[..p]);
        let after = &rest[p + 1..];
        match after.as_bytes().first() {
            Some(b'\\') => out.push('\\'),
            Some(b'"') => out.push('"'),
            Some(b'n') => out.push('\n'),
            _ => {
                out.push('\\');
                rest = after;
                continue;
            }
        }
        rest = &after[1..];
    }
    out.push_str(rest);
}

/// Character classes of name bytes, one table lookup per byte instead of
/// a chain of comparisons (names are most of a page's bytes).
const METRIC_START: u8 = 1;
const METRIC: u8 = 2;
const LABEL_START: u8 = 4;
const LABEL: u8 = 8;

static CLASS: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        let letter = c.is_ascii_alphabetic() || c == b'_';
        let mut v = 0;
        if letter || c == b':' {
            v |= METRIC_START | METRIC;
        }
        if c.is_ascii_digit() {
            v |= METRIC | LABEL;
        }
        if letter {
            v |= LABEL_START | LABEL;
        }
        t[i] = v;
        i += 1;
    }
    t
}

/// The end of the run starting at `i` of a first byte of class `start`
/// followed by bytes of class `rest` (`i` if none).
fn scan_class(b: &[u8], i: usize, start: u8, rest: u8) -> usize {
    match b.get(i) {
        Some(&c) if CLASS[c as usize] & start != 0 => {}
        _ => return i,
    }
    let tail = &b[i + 1..];
    i + 1
        + tail
            .iter()
            .position(|&c| CLASS[c as usize] & rest == 0)
            .unwrap_or(tail.len())
}

/// The end of `[a-zA-Z_:][a-zA-Z0-9_:]*` starting at `i` (`i` if none).
pub fn scan_metric_name(b: &[u8], i: usize) -> usize {
    scan_class(b, i, METRIC_START, METRIC)
}

/// The end of `[a-zA-Z_][a-zA-Z0-9_]*` starting at `i` (`i` if none).
pub fn scan_label_name(b: &[u8], i: usize) -> usize {
    scan_class(b, i, LABEL_START, LABEL)
}

/// The index of the first byte from `i` that is not a blank.
pub fn skip_blank(b: &[u8], i: usize) -> usize {
    i + b
        .get(i..)
        .unwrap_or_default()
        .iter()
        .take_while(|&&c| c == b' ' || c == b'\t')
        .count()
}

/// The run of non-blank bytes from `i`, and where it ends.
pub fn token(line: &str, i: usize) -> (&str, usize) {
    let b = line.as_bytes();
    let end = i + b
        .get(i..)
        .unwrap_or_default()
        .iter()
        .take_while(|&&c| c != b' ' && c != b'\t')
        .count();
    (line.get(i..end).unwrap_or(""), end)
}

/// The start of a line for an error message.
pub fn snippet(s: &str) -> &str {
    match s.char_indices().nth(80) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_end_where_their_class_does() {
        assert_eq!(scan_metric_name(b"a:b_1 2", 0), 5);
        assert_eq!(scan_metric_name(b"1a", 0), 0);
        assert_eq!(scan_metric_name(b"x{", 0), 1);
        assert_eq!(scan_label_name(b"a:b", 0), 1);
        assert_eq!(scan_label_name(b"_9=", 0), 2);
        assert_eq!(scan_label_name(b"\xff", 0), 0);
        assert_eq!(scan_label_name(b"", 0), 0);
        assert_eq!(scan_metric_name("é".as_bytes(), 0), 0);
    }
}
