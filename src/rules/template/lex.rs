//! Lexing the inside of one `{{ … }}` action into tokens.

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Dot,
    Field(Vec<String>),
    Var(String, Vec<String>),
    Ident(String),
    Str(String),
    Num(String),
    Pipe,
    LParen,
    /// `)` with an optional field chain right after it.
    RParen(Vec<String>),
    Declare,
    Assign,
    Comma,
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

pub(super) fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let cs: Vec<char> = s.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let ident = |i: &mut usize| {
        let start = *i;
        while *i < cs.len() && is_ident_char(cs[*i]) {
            *i += 1;
        }
        cs[start..*i].iter().collect::<String>()
    };
    let chain = |i: &mut usize| {
        let mut fields = Vec::new();
        while *i + 1 < cs.len() && cs[*i] == '.' && is_ident_char(cs[*i + 1]) {
            *i += 1;
            fields.push(ident(i));
        }
        fields
    };
    while i < cs.len() {
        let c = cs[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '|' => {
                toks.push(Tok::Pipe);
                i += 1;
            }
            '(' => {
                toks.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                i += 1;
                toks.push(Tok::RParen(chain(&mut i)));
            }
            ',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            ':' if cs.get(i + 1) == Some(&'=') => {
                toks.push(Tok::Declare);
                i += 2;
            }
            '=' => {
                toks.push(Tok::Assign);
                i += 1;
            }
            '.' if cs
                .get(i + 1)
                .is_some_and(|&c| is_ident_char(c) && !c.is_ascii_digit()) =>
            {
                toks.push(Tok::Field(chain(&mut i)));
            }
            '.' if !cs.get(i + 1).is_some_and(|c| c.is_ascii_digit()) => {
                toks.push(Tok::Dot);
                i += 1;
            }
            '$' => {
                i += 1;
                let name = ident(&mut i);
                toks.push(Tok::Var(name, chain(&mut i)));
            }
            '"' | '`' => {
                let (v, n) = lex_string(&cs[i..])?;
                toks.push(Tok::Str(v));
                i += n;
            }
            '\'' => {
                // A character constant is an integer in Go.
                let (v, n) = lex_string(&cs[i..])?;
                let mut it = v.chars();
                match (it.next(), it.next()) {
                    (Some(ch), None) => toks.push(Tok::Num((ch as u32).to_string())),
                    _ => {
                        return Err(format!(
                            "malformed character constant: {}",
                            cs[i..i + n].iter().collect::<String>()
                        ))
                    }
                }
                i += n;
            }
            c if c.is_ascii_digit() || c == '+' || c == '-' || c == '.' => {
                let start = i;
                i += 1;
                while i < cs.len()
                    && (cs[i].is_ascii_alphanumeric()
                        || cs[i] == '.'
                        || cs[i] == '_'
                        || ((cs[i] == '+' || cs[i] == '-')
                            && matches!(cs[i - 1], 'e' | 'E' | 'p' | 'P')))
                {
                    i += 1;
                }
                toks.push(Tok::Num(cs[start..i].iter().collect()));
            }
            c if is_ident_char(c) => toks.push(Tok::Ident(ident(&mut i))),
            c => return Err(format!("unexpected {c:?} in command")),
        }
    }
    Ok(toks)
}

/// A quoted string at the start of `cs`: its value and its length in chars.
fn lex_string(cs: &[char]) -> Result<(String, usize), String> {
    let q = cs[0];
    let mut out = String::new();
    let mut i = 1;
    while i < cs.len() {
        let c = cs[i];
        if c == q {
            return Ok((out, i + 1));
        }
        if c == '\\' && q != '`' {
            i += 1;
            let e = *cs.get(i).ok_or("unterminated quoted string")?;
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '\\' | '"' | '\'' => out.push(e),
                'x' | 'u' | 'U' => {
                    let n = match e {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let hex: String = cs
                        .get(i + 1..i + 1 + n)
                        .ok_or("bad escape")?
                        .iter()
                        .collect();
                    let v = u32::from_str_radix(&hex, 16).map_err(|_| "bad escape")?;
                    out.push(char::from_u32(v).ok_or("bad escape")?);
                    i += n;
                }
                _ => return Err(format!("unknown escape sequence: \\{e}")),
            }
        } else if c == '\n' && q != '`' {
            return Err("unterminated quoted string".into());
        } else {
            out.push(c);
        }
        i += 1;
    }
    Err("unterminated quoted string".into())
}
