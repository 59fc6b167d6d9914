//! Executing a parsed template against alert data, with Go's semantics for
//! the parts rule files rely on: truthiness, variable scopes, the piped
//! value passed as the last argument, "" for a missing label (Prometheus
//! runs templates with `missingkey=zero`).

use std::fmt;
use std::rc::Rc;

use super::parse::{Arg, Cmd, Node, Pipe};
use super::{funcs, gofmt, QuerySample, TemplateData};
use crate::model::Labels;

/// A template value. Go's `interface{}` narrowed to what alert templates see.
#[derive(Debug, Clone)]
pub enum Val {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// A `map[string]string`: `$labels`, `$externalLabels`.
    Map(Rc<Labels>),
    /// The root data (`.Labels`, `.ExternalLabels`, `.ExternalURL`, `.Value`).
    Data,
    /// The result of `query`.
    Samples(Rc<Vec<QuerySample>>),
    Sample(Rc<QuerySample>),
}

impl Val {
    /// Go's type name, for `%!d(float64=1.5)` and error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Val::Nil => "<nil>",
            Val::Bool(_) => "bool",
            Val::Int(_) => "int",
            Val::Float(_) => "float64",
            Val::Str(_) => "string",
            Val::Map(_) => "map[string]string",
            Val::Data => "struct",
            Val::Samples(_) => "[]*template.sample",
            Val::Sample(_) => "*template.sample",
        }
    }

    /// Go's truthiness for `if`, `with`, `and`, `or`, `not`.
    pub fn truthy(&self) -> bool {
        match self {
            Val::Nil => false,
            Val::Bool(b) => *b,
            Val::Int(i) => *i != 0,
            Val::Float(f) => *f != 0.0,
            Val::Str(s) => !s.is_empty(),
            Val::Map(m) => !m.is_empty(),
            Val::Samples(s) => !s.is_empty(),
            Val::Data | Val::Sample(_) => true,
        }
    }
}

fn fmt_map(f: &mut fmt::Formatter<'_>, m: &Labels) -> fmt::Result {
    f.write_str("map[")?;
    for (i, l) in m.iter().enumerate() {
        if i > 0 {
            f.write_str(" ")?;
        }
        write!(f, "{}:{}", l.name, l.value)?;
    }
    f.write_str("]")
}

impl fmt::Display for Val {
    /// Go's `%v`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::Nil => f.write_str("<nil>"),
            Val::Bool(b) => write!(f, "{b}"),
            Val::Int(i) => write!(f, "{i}"),
            Val::Float(v) => f.write_str(&gofmt::format_float(*v, 'g', None)),
            Val::Str(s) => f.write_str(s),
            Val::Map(m) => fmt_map(f, m),
            Val::Data => f.write_str("{…}"),
            Val::Sample(s) => {
                f.write_str("{")?;
                fmt_map(f, &s.labels)?;
                write!(f, " {}}}", gofmt::format_float(s.value, 'g', None))
            }
            Val::Samples(v) => {
                f.write_str("[")?;
                for (i, s) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{}", Val::Sample(Rc::new(s.clone())))?;
                }
                f.write_str("]")
            }
        }
    }
}

enum Flow {
    Normal,
    Break,
    Continue,
}

pub(super) struct Exec<'a, 'd> {
    pub name: &'a str,
    pub data: &'a TemplateData<'d>,
    pub vars: Vec<(String, Val)>,
    pub out: String,
    line: usize,
}

type R<T> = Result<T, String>;

impl<'a, 'd> Exec<'a, 'd> {
    pub fn new(name: &'a str, data: &'a TemplateData<'d>) -> Self {
        let vars = vec![
            (String::new(), Val::Data),
            ("labels".to_string(), Val::Map(data.labels.clone())),
            (
                "externalLabels".to_string(),
                Val::Map(data.external_labels.clone()),
            ),
            (
                "externalURL".to_string(),
                Val::Str(data.external_url.to_string()),
            ),
            ("value".to_string(), Val::Float(data.value)),
        ];
        Exec {
            name,
            data,
            vars,
            out: String::new(),
            line: 1,
        }
    }

    /// Runs the top-level list.
    pub fn run(&mut self, nodes: &[Node]) -> R<()> {
        self.list(nodes, &Val::Data).map(|_| ())
    }

    fn list(&mut self, nodes: &[Node], dot: &Val) -> R<Flow> {
        for n in nodes {
            let flow = match n {
                Node::Text(t) => {
                    self.out.push_str(t);
                    Flow::Normal
                }
                Node::Action(p) => {
                    let v = self.pipe(p, dot)?;
                    if p.decl.is_empty() {
                        gofmt::print_value(&v, &mut self.out);
                    }
                    Flow::Normal
                }
                Node::If(branches, else_) => self.if_(branches, else_, dot)?,
                Node::With(p, body, else_) => {
                    let mark = self.vars.len();
                    let v = self.pipe(p, dot)?;
                    let flow = if v.truthy() {
                        self.list(body, &v)?
                    } else {
                        self.list(else_, dot)?
                    };
                    self.vars.truncate(mark);
                    flow
                }
                Node::Range(p, body, else_) => self.range(p, body, else_, dot)?,
                Node::Break => Flow::Break,
                Node::Continue => Flow::Continue,
            };
            if !matches!(flow, Flow::Normal) {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn if_(&mut self, branches: &[(Pipe, Vec<Node>)], else_: &[Node], dot: &Val) -> R<Flow> {
        let mark = self.vars.len();
        let mut flow = None;
        for (p, body) in branches {
            if self.pipe(p, dot)?.truthy() {
                flow = Some(self.list(body, dot)?);
                break;
            }
        }
        let flow = match flow {
            Some(f) => f,
            None => self.list(else_, dot)?,
        };
        self.vars.truncate(mark);
        Ok(flow)
    }

    fn range(&mut self, p: &Pipe, body: &[Node], else_: &[Node], dot: &Val) -> R<Flow> {
        self.line = p.line;
        // The declared variables take each element, not the whole value.
        let undeclared = Pipe {
            decl: Vec::new(),
            ..p.clone()
        };
        let v = self.pipe(&undeclared, dot)?;
        let items: Vec<(Val, Val)> = match &v {
            Val::Map(m) => m
                .iter()
                .map(|l| (Val::Str(l.name.clone()), Val::Str(l.value.clone())))
                .collect(),
            Val::Samples(s) => s
                .iter()
                .enumerate()
                .map(|(i, s)| (Val::Int(i as i64), Val::Sample(Rc::new(s.clone()))))
                .collect(),
            Val::Int(n) => (0..*n).map(|i| (Val::Int(i), Val::Int(i))).collect(),
            Val::Nil => Vec::new(),
            other => return Err(self.err(&p.cmds[0], format!("range can't iterate over {other}"))),
        };
        if items.is_empty() {
            return self.list(else_, dot);
        }
        let mark = self.vars.len();
        for (k, e) in items {
            match p.decl.as_slice() {
                [v] => self.vars.push((v.clone(), e.clone())),
                [kn, vn] => {
                    self.vars.push((kn.clone(), k));
                    self.vars.push((vn.clone(), e.clone()));
                }
                _ => {}
            }
            let flow = self.list(body, &e)?;
            self.vars.truncate(mark);
            if matches!(flow, Flow::Break) {
                break;
            }
        }
        Ok(Flow::Normal)
    }

    fn err(&self, cmd: &Cmd, msg: String) -> String {
        format!(
            "template: {name}:{line}: executing \"{name}\" at <{src}>: {msg}",
            name = self.name,
            line = self.line,
            src = cmd.src
        )
    }

    fn pipe(&mut self, p: &Pipe, dot: &Val) -> R<Val> {
        self.line = p.line;
        let mut v = None;
        for c in &p.cmds {
            v = Some(self.cmd(c, dot, v.take())?);
        }
        let v = v.unwrap_or(Val::Nil);
        for name in &p.decl {
            if p.assign {
                if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    slot.1 = v.clone();
                }
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn cmd(&mut self, c: &Cmd, dot: &Val, piped: Option<Val>) -> R<Val> {
        match &c.args[0] {
            Arg::Func(name) if name == "and" || name == "or" => {
                // Short-circuit: arguments are evaluated only as needed.
                let want = name == "or";
                let n = c.args.len() - 1 + usize::from(piped.is_some());
                if n == 0 {
                    return Err(self.err(
                        c,
                        format!("wrong number of args for {name}: want at least 1 got 0"),
                    ));
                }
                let mut last = Val::Nil;
                for a in &c.args[1..] {
                    last = self.arg(c, a, dot)?;
                    if last.truthy() == want {
                        return Ok(last);
                    }
                }
                Ok(piped.unwrap_or(last))
            }
            Arg::Func(name) => {
                let mut args = Vec::with_capacity(c.args.len());
                for a in &c.args[1..] {
                    args.push(self.arg(c, a, dot)?);
                }
                args.extend(piped);
                funcs::call(name, args, self.data).map_err(|e| self.err(c, e))
            }
            Arg::Nil => Err(self.err(c, "nil is not a command".into())),
            first => {
                if piped.is_some() {
                    return Err(self.err(c, "can't give argument to non-function".into()));
                }
                self.arg(c, first, dot)
            }
        }
    }

    fn arg(&mut self, c: &Cmd, a: &Arg, dot: &Val) -> R<Val> {
        match a {
            Arg::Dot => Ok(dot.clone()),
            Arg::Field(chain) => self.fields(c, dot.clone(), chain),
            Arg::Var(name, chain) => {
                let v = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| self.err(c, format!("undefined variable: ${name}")))?;
                self.fields(c, v, chain)
            }
            // A function name as an argument is called without arguments.
            Arg::Func(name) => funcs::call(name, Vec::new(), self.data).map_err(|e| self.err(c, e)),
            Arg::Str(s) => Ok(Val::Str(s.clone())),
            Arg::Int(i) => Ok(Val::Int(*i)),
            Arg::Float(f) => Ok(Val::Float(*f)),
            Arg::Bool(b) => Ok(Val::Bool(*b)),
            Arg::Nil => Ok(Val::Nil),
            Arg::Sub(p, chain) => {
                let v = self.pipe(p, dot)?;
                self.fields(c, v, chain)
            }
        }
    }

    fn fields(&self, c: &Cmd, mut v: Val, chain: &[String]) -> R<Val> {
        for name in chain {
            v = match (&v, name.as_str()) {
                (Val::Data, "Labels") => Val::Map(self.data.labels.clone()),
                (Val::Data, "ExternalLabels") => Val::Map(self.data.external_labels.clone()),
                (Val::Data, "ExternalURL") => Val::Str(self.data.external_url.to_string()),
                (Val::Data, "Value") => Val::Float(self.data.value),
                // Prometheus executes templates with `missingkey=zero`: a
                // missing label is "", not Go's default `<no value>`.
                (Val::Map(m), key) => Val::Str(m.get(key).unwrap_or("").to_string()),
                (Val::Sample(s), "Labels") => Val::Map(Rc::new(s.labels.clone())),
                (Val::Sample(s), "Value") => Val::Float(s.value),
                (other, _) => {
                    return Err(self.err(
                        c,
                        format!("can't evaluate field {name} in type {}", other.type_name()),
                    ))
                }
            };
        }
        Ok(v)
    }
}
