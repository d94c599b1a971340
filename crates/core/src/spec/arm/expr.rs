//! The ARM template expression language, parsed: `[concat('a', parameters('b'))]`
//! becomes a small tree that [`super::eval`] walks.
//!
//! Grammar (the part templates use): string literals in single quotes with
//! `''` for a quote, integers, function calls (`name(args)`, also
//! `namespace.name(args)` for user-defined functions), member access
//! `.name` and index `[expr]`.

use std::fmt;

/// Longest expression parsed, and deepest call nesting: far beyond what a
/// real template holds, small enough that a hostile one cannot exhaust the
/// stack.
pub const MAX_EXPR_LEN: usize = 64 * 1024;
pub const MAX_EXPR_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Str(String),
    Int(i64),
    /// A function call; `name` is lower-case, namespaced names keep their dot.
    Call(String, Vec<Expr>),
    Member(Box<Expr>, String),
    Index(Box<Expr>, Box<Expr>),
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Str(s) => write!(f, "'{}'", s.replace('\'', "''")),
            Expr::Int(i) => write!(f, "{i}"),
            Expr::Call(n, args) => {
                write!(f, "{n}(")?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
            Expr::Member(e, m) => write!(f, "{e}.{m}"),
            Expr::Index(e, i) => write!(f, "{e}[{i}]"),
        }
    }
}

/// Whether a template string is an expression (`[...]`, but not the escaped
/// literal `[[...`).
pub fn is_expression(s: &str) -> bool {
    let t = s.trim();
    t.len() >= 2 && t.starts_with('[') && t.ends_with(']') && !t.starts_with("[[")
}

/// A template string with an escaped leading bracket (`[[x]`) as the literal
/// it stands for (`[x]`); other strings unchanged.
pub fn unescape_literal(s: &str) -> &str {
    if s.starts_with("[[") {
        &s[1..]
    } else {
        s
    }
}

/// Parses the text of an expression string, brackets included.
pub fn parse(source: &str) -> Result<Expr, String> {
    let t = source.trim();
    if t.len() > MAX_EXPR_LEN {
        return Err(format!(
            "the expression is longer than {MAX_EXPR_LEN} characters"
        ));
    }
    let inner = t
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or_else(|| "an expression is written [ ... ]".to_string())?;
    let mut p = Parser {
        chars: inner.chars().collect(),
        pos: 0,
        depth: 0,
    };
    let e = p.expr()?;
    p.skip_ws();
    if p.pos != p.chars.len() {
        return Err(format!(
            "unexpected '{}' at position {}",
            p.chars[p.pos],
            p.pos + 1
        ));
    }
    Ok(e)
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn skip_ws(&mut self) {
        while self.pos < self.chars.len() && self.chars[self.pos].is_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_ws();
        self.chars.get(self.pos).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(match self.chars.get(self.pos) {
                Some(got) => format!(
                    "expected '{c}' but found '{got}' at position {}",
                    self.pos + 1
                ),
                None => format!("expected '{c}' but the expression ended"),
            })
        }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        self.depth += 1;
        if self.depth > MAX_EXPR_DEPTH {
            return Err(format!(
                "the expression nests deeper than {MAX_EXPR_DEPTH} calls"
            ));
        }
        let mut e = self.primary()?;
        loop {
            if self.eat('.') {
                let name = self.ident()?;
                e = Expr::Member(Box::new(e), name);
            } else if self.eat('[') {
                let i = self.expr()?;
                self.expect(']')?;
                e = Expr::Index(Box::new(e), Box::new(i));
            } else {
                break;
            }
        }
        self.depth -= 1;
        Ok(e)
    }

    fn ident(&mut self) -> Result<String, String> {
        self.skip_ws();
        let start = self.pos;
        while self
            .chars
            .get(self.pos)
            .is_some_and(|c| c.is_alphanumeric() || *c == '_' || *c == '$')
        {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(match self.chars.get(self.pos) {
                Some(c) => format!(
                    "expected a name at position {} but found '{c}'",
                    self.pos + 1
                ),
                None => "expected a name but the expression ended".to_string(),
            });
        }
        Ok(self.chars[start..self.pos].iter().collect())
    }

    fn primary(&mut self) -> Result<Expr, String> {
        match self.peek() {
            Some('\'') => self.string(),
            Some(c) if c.is_ascii_digit() || c == '-' => self.number(),
            Some('(') => {
                self.pos += 1;
                let e = self.expr()?;
                self.expect(')')?;
                Ok(e)
            }
            Some(_) => {
                let mut name = self.ident()?;
                // A namespaced user-defined function: ns.name(...)
                let save = self.pos;
                if self.eat('.') {
                    if let Ok(member) = self.ident() {
                        if self.peek() == Some('(') {
                            name = format!("{name}.{member}");
                        } else {
                            self.pos = save;
                        }
                    } else {
                        self.pos = save;
                    }
                }
                if !self.eat('(') {
                    // Bare literals some generators write.
                    return match name.to_ascii_lowercase().as_str() {
                        "true" | "false" | "null" => Ok(Expr::Call(name.to_ascii_lowercase(), vec![])),
                        _ => Err(format!("'{name}' must be followed by '(': only function calls, strings and numbers are expressions")),
                    };
                }
                let mut args = Vec::new();
                if !self.eat(')') {
                    loop {
                        args.push(self.expr()?);
                        if self.eat(')') {
                            break;
                        }
                        self.expect(',')?;
                    }
                }
                Ok(Expr::Call(name.to_ascii_lowercase(), args))
            }
            None => Err("the expression is empty".to_string()),
        }
    }

    fn string(&mut self) -> Result<Expr, String> {
        self.pos += 1; // opening quote
        let mut s = String::new();
        loop {
            match self.chars.get(self.pos) {
                None => return Err("a string literal is not closed with '".to_string()),
                Some('\'') if self.chars.get(self.pos + 1) == Some(&'\'') => {
                    s.push('\'');
                    self.pos += 2;
                }
                Some('\'') => {
                    self.pos += 1;
                    return Ok(Expr::Str(s));
                }
                Some(c) => {
                    s.push(*c);
                    self.pos += 1;
                }
            }
        }
    }

    fn number(&mut self) -> Result<Expr, String> {
        let start = self.pos;
        if self.chars[self.pos] == '-' {
            self.pos += 1;
        }
        while self.chars.get(self.pos).is_some_and(char::is_ascii_digit) {
            self.pos += 1;
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        text.parse()
            .map(Expr::Int)
            .map_err(|_| format!("'{text}' is not a whole number"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_template_expressions() {
        let e = parse("[parameters('agentCount')]").unwrap();
        assert_eq!(
            e,
            Expr::Call("parameters".into(), vec![Expr::Str("agentCount".into())])
        );
        let e = parse("[split(parameters('id'),'/')[8]]").unwrap();
        assert!(matches!(e, Expr::Index(_, _)));
        let e = parse("[reference(resourceId('a/b', 'x'), '2019-11-01', 'Full').properties.ipConfigurations[0].properties.privateIpAddress]").unwrap();
        assert!(matches!(e, Expr::Member(_, ref m) if m == "privateIpAddress"));
        let e = parse("[__bicep.subnetId(parameters('v'), 'x')]").unwrap();
        assert!(matches!(e, Expr::Call(ref n, _) if n == "__bicep.subnetid"));
        assert_eq!(parse("['it''s']").unwrap(), Expr::Str("it's".into()));
        assert_eq!(parse("[add(1, -2)]").unwrap().to_string(), "add(1, -2)");
    }

    #[test]
    fn rejects_malformed_expressions() {
        for bad in [
            "[concat('a'",
            "[parameters('x')",
            "['open]",
            "[foo]",
            "[]",
            "[a(1) b]",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let deep = format!("[{}1{}]", "add(".repeat(100), ")".repeat(100));
        assert!(parse(&deep).unwrap_err().contains("deeper"));
        assert!(is_expression("[x()]"));
        assert!(!is_expression("[[x()]"));
        assert_eq!(unescape_literal("[[x]"), "[x]");
    }
}
