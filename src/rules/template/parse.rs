//! Parsing Go `text/template` source into a tree: the subset rule files use
//! (text, actions, pipelines, variables, `if`/`else if`/`else`, `range`,
//! `with`, comments, trim markers). Undefined variables and functions are
//! parse errors, as in Go, so that typos fail when a rule file is loaded.

use super::funcs;
use super::lex::{lex, Tok};

#[derive(Debug, Clone)]
pub(super) enum Node {
    Text(String),
    /// Prints the pipeline's value, unless it declares variables.
    Action(Pipe),
    /// `if`/`else if` branches, then the `else` list.
    If(Vec<(Pipe, Vec<Node>)>, Vec<Node>),
    With(Pipe, Vec<Node>, Vec<Node>),
    Range(Pipe, Vec<Node>, Vec<Node>),
    Break,
    Continue,
}

#[derive(Debug, Clone)]
pub(super) struct Pipe {
    /// Variables declared (`:=`) or assigned (`=`) by the pipeline.
    pub decl: Vec<String>,
    pub assign: bool,
    pub cmds: Vec<Cmd>,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub(super) struct Cmd {
    pub args: Vec<Arg>,
    /// Source text, for error messages (`at <humanize $value>`).
    pub src: String,
}

#[derive(Debug, Clone)]
pub(super) enum Arg {
    Dot,
    /// `.A.B`: fields of dot.
    Field(Vec<String>),
    /// `$x.A.B`; `$` is the name "".
    Var(String, Vec<String>),
    Func(String),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    /// `(pipeline).A.B`
    Sub(Box<Pipe>, Vec<String>),
}

/// One `{{ … }}` or one piece of text.
enum Item {
    Text(String),
    Action {
        toks: Vec<Tok>,
        src: String,
        line: usize,
    },
}

/// Variables every alert template has, as Prometheus predeclares them.
pub(super) const PREDECLARED: [&str; 5] = ["", "labels", "externalLabels", "externalURL", "value"];

pub(super) fn parse(text: &str) -> Result<Vec<Node>, String> {
    let items = split(text)?;
    let mut p = Parser {
        items,
        pos: 0,
        vars: PREDECLARED.iter().map(|s| s.to_string()).collect(),
        range_depth: 0,
    };
    let (nodes, end) = p.list()?;
    match end {
        Stop::Eof => Ok(nodes),
        Stop::End(line) => Err(format!("{line}: unexpected {{{{end}}}}")),
        Stop::Else(line, _) => Err(format!("{line}: unexpected {{{{else}}}}")),
    }
}

fn line_at(text: &str, offset: usize) -> usize {
    1 + text[..offset].bytes().filter(|&b| b == b'\n').count()
}

/// Splits text and actions, applying trim markers and dropping comments.
fn split(text: &str) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut rest = 0;
    let mut trim_next = false;
    while let Some(open) = text[rest..].find("{{").map(|i| i + rest) {
        let mut inner_start = open + 2;
        let trim_left = text[inner_start..].starts_with("- ")
            || text[inner_start..].starts_with("-\t")
            || text[inner_start..].starts_with("-\n");
        if trim_left {
            inner_start += 1;
        }
        let mut chunk = &text[rest..open];
        if trim_next {
            chunk = chunk.trim_start();
        }
        if trim_left {
            chunk = chunk.trim_end();
        }
        if !chunk.is_empty() {
            items.push(Item::Text(chunk.to_string()));
        }
        let line = line_at(text, open);
        let close =
            find_close(text, inner_start).ok_or_else(|| format!("{line}: unclosed action"))?;
        let mut inner_end = close;
        trim_next = false;
        let before = &text[inner_start..close];
        if before.ends_with(" -") || before.ends_with("\t-") || before.ends_with("\n-") {
            inner_end -= 1;
            trim_next = true;
        }
        let inner = text[inner_start..inner_end].trim();
        rest = close + 2;
        if inner.starts_with("/*") {
            if !inner.ends_with("*/") {
                return Err(format!("{line}: unclosed comment"));
            }
            continue;
        }
        let toks = lex(inner).map_err(|e| format!("{line}: {e}"))?;
        items.push(Item::Action {
            toks,
            src: inner.to_string(),
            line,
        });
    }
    let mut chunk = &text[rest..];
    if trim_next {
        chunk = chunk.trim_start();
    }
    if !chunk.is_empty() {
        items.push(Item::Text(chunk.to_string()));
    }
    Ok(items)
}

/// The `}}` closing an action, skipping quoted strings.
fn find_close(text: &str, from: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = from;
    while i + 1 < b.len() {
        match b[i] {
            b'"' | b'`' | b'\'' => {
                let q = b[i];
                i += 1;
                while i < b.len() && b[i] != q {
                    if b[i] == b'\\' && q != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'}' if b[i + 1] == b'}' => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

enum Stop {
    Eof,
    End(usize),
    /// `{{else}}` or `{{else <keyword> …}}` with the rest of its tokens.
    Else(usize, Vec<Tok>),
}

struct Parser {
    items: Vec<Item>,
    pos: usize,
    vars: Vec<String>,
    range_depth: usize,
}

impl Parser {
    fn list(&mut self) -> Result<(Vec<Node>, Stop), String> {
        let mut nodes = Vec::new();
        while self.pos < self.items.len() {
            let i = self.pos;
            self.pos += 1;
            let (toks, src, line) = match &self.items[i] {
                Item::Text(t) => {
                    nodes.push(Node::Text(t.clone()));
                    continue;
                }
                Item::Action { toks, src, line } => (toks.clone(), src.clone(), *line),
            };
            let kw = match toks.first() {
                Some(Tok::Ident(k)) => k.as_str(),
                None => return Err(format!("{line}: missing value for command")),
                _ => "",
            };
            match kw {
                "end" if toks.len() == 1 => return Ok((nodes, Stop::End(line))),
                "else" => return Ok((nodes, Stop::Else(line, toks[1..].to_vec()))),
                "if" => nodes.push(self.if_chain(&toks[1..], &src, line)?),
                "with" | "range" => {
                    let mark = self.vars.len();
                    let pipe = self.pipe(&toks[1..], &src, line, kw == "range")?;
                    if kw == "range" {
                        self.range_depth += 1;
                    }
                    let res = self.list();
                    if kw == "range" {
                        self.range_depth -= 1;
                    }
                    let (body, end) = res?;
                    let else_ = self.else_list(end, kw, line)?;
                    self.vars.truncate(mark);
                    nodes.push(if kw == "range" {
                        Node::Range(pipe, body, else_)
                    } else {
                        Node::With(pipe, body, else_)
                    });
                }
                "break" | "continue" if toks.len() == 1 => {
                    if self.range_depth == 0 {
                        return Err(format!("{line}: {{{{{kw}}}}} outside {{{{range}}}}"));
                    }
                    nodes.push(if kw == "break" {
                        Node::Break
                    } else {
                        Node::Continue
                    });
                }
                "define" | "template" | "block" | "end" | "break" | "continue" => {
                    return Err(format!("{line}: unsupported action {{{{{src}}}}}"))
                }
                _ => nodes.push(Node::Action(self.pipe(&toks, &src, line, false)?)),
            }
        }
        Ok((nodes, Stop::Eof))
    }

    fn if_chain(&mut self, toks: &[Tok], src: &str, line: usize) -> Result<Node, String> {
        let mut branches = Vec::new();
        let mut cond = toks.to_vec();
        let mark = self.vars.len();
        loop {
            let pipe = self.pipe(&cond, src, line, false)?;
            let (body, end) = self.list()?;
            branches.push((pipe, body));
            match end {
                Stop::Else(_, rest) if matches!(rest.first(), Some(Tok::Ident(k)) if k == "if") => {
                    cond = rest[1..].to_vec();
                }
                end => {
                    let else_ = self.else_list(end, "if", line)?;
                    self.vars.truncate(mark);
                    return Ok(Node::If(branches, else_));
                }
            }
        }
    }

    fn else_list(&mut self, end: Stop, kw: &str, line: usize) -> Result<Vec<Node>, String> {
        match end {
            Stop::End(_) => Ok(Vec::new()),
            Stop::Eof => Err(format!(
                "{line}: unexpected EOF: {{{{{kw}}}}} without {{{{end}}}}"
            )),
            Stop::Else(l, rest) => {
                if !rest.is_empty() {
                    return Err(format!("{l}: unsupported {{{{else …}}}} in {{{{{kw}}}}}"));
                }
                match self.list()? {
                    (nodes, Stop::End(_)) => Ok(nodes),
                    (_, Stop::Else(l, _)) => Err(format!("{l}: expected end; found {{{{else}}}}")),
                    (_, Stop::Eof) => Err(format!(
                        "{line}: unexpected EOF: {{{{{kw}}}}} without {{{{end}}}}"
                    )),
                }
            }
        }
    }

    fn pipe(&mut self, toks: &[Tok], src: &str, line: usize, range: bool) -> Result<Pipe, String> {
        let err = |m: String| format!("{line}: {m} in {{{{{src}}}}}");
        let mut decl = Vec::new();
        let mut assign = false;
        let mut rest = toks;
        // `$x :=`, `$x =`, or in range `$k, $v :=`.
        let decl_len = match toks {
            [Tok::Var(a, f), Tok::Comma, Tok::Var(b, g), Tok::Declare, ..]
                if range && f.is_empty() && g.is_empty() =>
            {
                decl = vec![a.clone(), b.clone()];
                4
            }
            [Tok::Var(a, f), Tok::Declare | Tok::Assign, ..] if f.is_empty() => {
                assign = toks[1] == Tok::Assign;
                decl = vec![a.clone()];
                2
            }
            _ => 0,
        };
        rest = &rest[decl_len..];
        let mut pos = 0;
        let pipe = self.pipeline(rest, &mut pos, src, line).map_err(err)?;
        if pos != rest.len() {
            return Err(err("unexpected )".into()));
        }
        for v in &decl {
            if assign {
                if !self.vars.contains(v) {
                    return Err(format!("{line}: undefined variable \"${v}\""));
                }
            } else {
                self.vars.push(v.clone());
            }
        }
        Ok(Pipe {
            decl,
            assign,
            ..pipe
        })
    }

    /// Commands separated by `|`, up to the end or an unmatched `)`.
    fn pipeline(
        &self,
        toks: &[Tok],
        pos: &mut usize,
        src: &str,
        line: usize,
    ) -> Result<Pipe, String> {
        let mut cmds = Vec::new();
        loop {
            let start = *pos;
            let mut args = Vec::new();
            while *pos < toks.len() && !matches!(toks[*pos], Tok::Pipe | Tok::RParen(_)) {
                args.push(self.operand(toks, pos, src, line)?);
            }
            if args.is_empty() {
                return Err("missing value for command".into());
            }
            if args.len() > 1 && !matches!(args[0], Arg::Func(_)) {
                return Err(format!(
                    "can't give argument to non-function {}",
                    describe(&toks[start])
                ));
            }
            cmds.push(Cmd {
                args,
                src: src.to_string(),
            });
            if *pos < toks.len() && toks[*pos] == Tok::Pipe {
                *pos += 1;
                continue;
            }
            break;
        }
        Ok(Pipe {
            decl: Vec::new(),
            assign: false,
            cmds,
            line,
        })
    }

    fn operand(
        &self,
        toks: &[Tok],
        pos: &mut usize,
        src: &str,
        line: usize,
    ) -> Result<Arg, String> {
        let t = &toks[*pos];
        *pos += 1;
        Ok(match t {
            Tok::Dot => Arg::Dot,
            Tok::Field(f) => Arg::Field(f.clone()),
            Tok::Var(name, f) => {
                if !self.vars.contains(name) {
                    return Err(format!("undefined variable \"${name}\""));
                }
                Arg::Var(name.clone(), f.clone())
            }
            Tok::Str(s) => Arg::Str(s.clone()),
            Tok::Num(n) => number(n)?,
            Tok::Ident(id) => match id.as_str() {
                "true" => Arg::Bool(true),
                "false" => Arg::Bool(false),
                "nil" => Arg::Nil,
                f if funcs::exists(f) => Arg::Func(f.to_string()),
                f => return Err(format!("function \"{f}\" not defined")),
            },
            Tok::LParen => {
                let inner = self.pipeline(toks, pos, src, line)?;
                match toks.get(*pos) {
                    Some(Tok::RParen(f)) => {
                        *pos += 1;
                        Arg::Sub(Box::new(inner), f.clone())
                    }
                    _ => return Err("unclosed left paren".into()),
                }
            }
            t => return Err(format!("unexpected {} in operand", describe(t))),
        })
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Dot => ".".into(),
        Tok::Field(f) => format!(".{}", f.join(".")),
        Tok::Var(n, f) if f.is_empty() => format!("${n}"),
        Tok::Var(n, f) => format!("${n}.{}", f.join(".")),
        Tok::Ident(s) | Tok::Num(s) => s.clone(),
        Tok::Str(s) => format!("{s:?}"),
        Tok::Pipe => "|".into(),
        Tok::LParen => "(".into(),
        Tok::RParen(_) => ")".into(),
        Tok::Declare => ":=".into(),
        Tok::Assign => "=".into(),
        Tok::Comma => ",".into(),
    }
}

/// Go's constants: an integer unless the text has `.`, `e` or `p` (then a
/// float), so `80` is an int and `80.0` a float, which matters to `gt`.
fn number(n: &str) -> Result<Arg, String> {
    let clean = n.replace('_', "");
    let (neg, digits) = match clean.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, clean.strip_prefix('+').unwrap_or(&clean)),
    };
    let int = if let Some(h) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(b) = digits
        .strip_prefix("0b")
        .or_else(|| digits.strip_prefix("0B"))
    {
        i64::from_str_radix(b, 2).ok()
    } else if let Some(o) = digits
        .strip_prefix("0o")
        .or_else(|| digits.strip_prefix("0O"))
    {
        i64::from_str_radix(o, 8).ok()
    } else if digits.len() > 1
        && digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        i64::from_str_radix(&digits[1..], 8).ok()
    } else if digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()
    } else {
        None
    };
    if let Some(i) = int {
        return Ok(Arg::Int(if neg { -i } else { i }));
    }
    match clean.parse::<f64>() {
        Ok(f) if clean.contains(['.', 'e', 'E']) => Ok(Arg::Float(f)),
        _ => Err(format!("bad number syntax: {n:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_shapes_rule_files_use() {
        let ok = [
            "{{ $labels.instance }} is at {{ $value | humanize }}",
            "{{ .Labels.job }} {{ .Value }}",
            "{{ if gt $value 80.0 }}high{{ else if gt $value 50.0 }}mid{{ else }}low{{ end }}",
            "{{ range $k, $v := $labels }}{{ $k }}={{ $v }} {{ end }}",
            "{{ with $labels.x }}{{ . }}{{ end }}",
            "{{- /* comment */ -}} {{ printf \"%.2f\" $value }}",
            "{{ $x := 1 }}{{ $x = 2 }}{{ $x }}",
            "{{ (index $labels \"a\") | toUpper }}",
            "{{ humanize (printf `%f` $value) }}",
        ];
        for t in ok {
            parse(t).unwrap_or_else(|e| panic!("{t}: {e}"));
        }
    }

    #[test]
    fn rejects_typos_at_parse_time() {
        let cases = [
            ("{{ $lables.x }}", "undefined variable \"$lables\""),
            ("{{ humanise $value }}", "function \"humanise\" not defined"),
            ("{{ if $value }}x", "without {{end}}"),
            ("{{ end }}", "unexpected {{end}}"),
            ("{{ $labels.x", "unclosed action"),
            ("{{ \"abc }}", "unclosed action"),
            ("{{ \"abc\n\" }}", "unterminated"),
            ("{{ $value 1 }}", "can't give argument to non-function"),
            ("{{ (humanize $value }}", "unclosed left paren"),
            ("{{ break }}", "outside {{range}}"),
            ("{{ template \"x\" }}", "unsupported action"),
            (
                "{{ if 1 }}{{ $y := 1 }}{{ end }}{{ $y }}",
                "undefined variable \"$y\"",
            ),
        ];
        for (t, want) in cases {
            let e = parse(t).expect_err(t);
            assert!(e.contains(want), "{t}: {e}");
        }
    }

    #[test]
    fn trim_markers_and_numbers() {
        let nodes = parse("a  {{- 1 -}}  b").unwrap();
        assert!(matches!(&nodes[0], Node::Text(t) if t == "a"));
        assert!(matches!(&nodes[2], Node::Text(t) if t == "b"));
        assert!(matches!(number("80"), Ok(Arg::Int(80))));
        assert!(matches!(number("80.0"), Ok(Arg::Float(f)) if f == 80.0));
        assert!(matches!(number("-1e3"), Ok(Arg::Float(f)) if f == -1000.0));
        assert!(matches!(number("0x1F"), Ok(Arg::Int(31))));
        assert!(number("1.2.3").is_err());
    }
}
