//! The OData `$filter` subset Dataverse accepts, parsed (tokenizer + recursive descent) into an
//! AST: comparisons (`eq ne gt ge lt le`), `and`/`or`/`not`, parentheses, string (with `''`
//! escaping), GUID, number, boolean and null literals, parameter aliases (`@p`),
//! `contains`/`startswith`/`endswith`, lambda `any`/`all` over collection navigation
//! properties, and `Microsoft.Dynamics.CRM.In(PropertyName='x',PropertyValues=['a','b'])`.
//! Anything else is a parse error naming what is unsupported; nothing is silently ignored.
//!
//! This module is pure: binding names to columns and evaluating rows live in `query.rs`.

use std::collections::HashMap;

use uuid::Uuid;

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// A decimal number.
    Dec(f64),
    /// `'text'`.
    Str(String),
    /// An unquoted GUID.
    Guid(Uuid),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `eq`.
    Eq,
    /// `ne`.
    Ne,
    /// `gt`.
    Gt,
    /// `ge`.
    Ge,
    /// `lt`.
    Lt,
    /// `le`.
    Le,
}

/// A text function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFn {
    /// `contains`.
    Contains,
    /// `startswith`.
    StartsWith,
    /// `endswith`.
    EndsWith,
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A property path: `name`, `nav/name`, or `var/name` inside a lambda.
    Path(Vec<String>),
    /// A literal.
    Lit(Lit),
}

/// A boolean expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `a and b`.
    And(Box<Expr>, Box<Expr>),
    /// `a or b`.
    Or(Box<Expr>, Box<Expr>),
    /// `not a`.
    Not(Box<Expr>),
    /// `left op right`.
    Cmp(Operand, Op, Operand),
    /// `contains(path, 'x')` and friends.
    Text(TextFn, Vec<String>, String),
    /// `Microsoft.Dynamics.CRM.In(PropertyName='x',PropertyValues=[...])`.
    In(String, Vec<Lit>),
    /// `nav/any(v:body)` (`all` when the flag is set); `body` may be absent for `nav/any()`.
    Lambda {
        /// The collection navigation property.
        nav: String,
        /// `all` rather than `any`.
        all: bool,
        /// The range variable.
        var: String,
        /// The condition (absent for `any()`).
        body: Option<Box<Expr>>,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Date(String),
    Str(String),
    LParen,
    RParen,
    Comma,
    Slash,
    Colon,
    Equals,
    LBracket,
    RBracket,
}

fn is_date_start(chars: &[char]) -> bool {
    chars.len() >= 10
        && chars[..4].iter().all(char::is_ascii_digit)
        && chars[4] == '-'
        && chars[5..7].iter().all(char::is_ascii_digit)
        && chars[7] == '-'
        && chars[8..10].iter().all(char::is_ascii_digit)
        && !chars
            .get(10)
            .is_some_and(|c| c.is_ascii_hexdigit() && *c != 'T')
}

/// A date or date-time literal as the store keeps dates (UTC, seconds).
fn normalize_date(text: &str) -> Result<String, String> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(at
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string());
    }
    if chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok() {
        return Ok(format!("{text}T00:00:00Z"));
    }
    Err(format!("'{text}' is not a valid date literal"))
}

fn tokenize(text: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '/' => {
                out.push(Tok::Slash);
                i += 1;
            }
            ':' => {
                out.push(Tok::Colon);
                i += 1;
            }
            '=' => {
                out.push(Tok::Equals);
                i += 1;
            }
            '[' => {
                out.push(Tok::LBracket);
                i += 1;
            }
            ']' => {
                out.push(Tok::RBracket);
                i += 1;
            }
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated string literal".to_owned()),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            s.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            s.push(*ch);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(s));
            }
            c if c.is_ascii_digit() && is_date_start(&chars[i..]) => {
                // An unquoted date or date-time literal: 2024-01-31 or 2024-01-31T10:00:00Z.
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || matches!(chars[i], '-' | ':' | '.' | '+'))
                {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                out.push(Tok::Date(normalize_date(&text)?));
            }
            c if c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '@' | '+' | '$') => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric()
                        || matches!(chars[i], '_' | '.' | '-' | '@' | '+' | '$'))
                {
                    i += 1;
                }
                out.push(Tok::Word(chars[start..i].iter().collect()));
            }
            other => return Err(format!("unexpected character '{other}'")),
        }
    }
    Ok(out)
}

/// Parse a `$filter` value. `aliases` are the request's `@name=value` parameters.
///
/// # Errors
/// The text is not in the supported grammar (the message says where).
pub fn parse(text: &str, aliases: &HashMap<String, String>) -> Result<Expr, String> {
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        aliases,
    };
    let expr = parser.or()?;
    if parser.pos != parser.tokens.len() {
        return Err(format!(
            "syntax error at position {} in '{text}'",
            parser.pos
        ));
    }
    Ok(expr)
}

struct Parser<'a> {
    tokens: Vec<Tok>,
    pos: usize,
    aliases: &'a HashMap<String, String>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos)
    }

    fn peek_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w == word)
    }

    fn expect(&mut self, tok: &Tok) -> Result<(), String> {
        if self.peek() == Some(tok) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected {tok:?}, found {:?}", self.peek()))
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.pos += 1;
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while self.peek_word("and") {
            self.pos += 1;
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.peek_word("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let inner = self.or()?;
            self.expect(&Tok::RParen)?;
            return Ok(inner);
        }
        if let Some(Tok::Word(word)) = self.peek().cloned()
            && self.tokens.get(self.pos + 1) == Some(&Tok::LParen)
        {
            return self.function(&word);
        }
        let left = self.operand()?;
        if let Operand::Path(path) = &left
            && self.peek() == Some(&Tok::Slash)
        {
            return self.lambda(path.clone());
        }
        let op = match self.peek() {
            Some(Tok::Word(w)) => match w.as_str() {
                "eq" => Op::Eq,
                "ne" => Op::Ne,
                "gt" => Op::Gt,
                "ge" => Op::Ge,
                "lt" => Op::Lt,
                "le" => Op::Le,
                "has" | "add" | "sub" | "mul" | "div" | "mod" | "in" => {
                    return Err(format!("the operator '{w}' is not supported"));
                }
                other => return Err(format!("expected a comparison operator, found '{other}'")),
            },
            other => return Err(format!("expected a comparison operator, found {other:?}")),
        };
        self.pos += 1;
        let right = self.operand()?;
        Ok(Expr::Cmp(left, op, right))
    }

    fn lambda(&mut self, path: Vec<String>) -> Result<Expr, String> {
        // path is the navigation property; next is '/', 'any' | 'all', '('.
        self.expect(&Tok::Slash)?;
        let all = match self.peek() {
            Some(Tok::Word(w)) if w == "any" => false,
            Some(Tok::Word(w)) if w == "all" => true,
            other => return Err(format!("expected any or all, found {other:?}")),
        };
        self.pos += 1;
        self.expect(&Tok::LParen)?;
        let nav = path.join("/");
        if self.peek() == Some(&Tok::RParen) && !all {
            self.pos += 1;
            return Ok(Expr::Lambda {
                nav,
                all,
                var: String::new(),
                body: None,
            });
        }
        let var = match self.peek().cloned() {
            Some(Tok::Word(w)) => w,
            other => return Err(format!("expected a range variable, found {other:?}")),
        };
        self.pos += 1;
        self.expect(&Tok::Colon)?;
        let body = self.or()?;
        self.expect(&Tok::RParen)?;
        Ok(Expr::Lambda {
            nav,
            all,
            var,
            body: Some(Box::new(body)),
        })
    }

    fn function(&mut self, name: &str) -> Result<Expr, String> {
        self.pos += 2; // name and '('
        let text_fn = match name {
            "contains" => Some(TextFn::Contains),
            "startswith" => Some(TextFn::StartsWith),
            "endswith" => Some(TextFn::EndsWith),
            _ => None,
        };
        if let Some(f) = text_fn {
            let Operand::Path(path) = self.operand()? else {
                return Err(format!("{name}: the first argument must be a property"));
            };
            self.expect(&Tok::Comma)?;
            let Operand::Lit(Lit::Str(value)) = self.operand()? else {
                return Err(format!("{name}: the second argument must be a string"));
            };
            self.expect(&Tok::RParen)?;
            return Ok(Expr::Text(f, path, value));
        }
        if name == "Microsoft.Dynamics.CRM.In" {
            let mut property = None;
            let mut values = None;
            loop {
                let key = match self.peek().cloned() {
                    Some(Tok::Word(w)) => w,
                    other => return Err(format!("In: expected a parameter, found {other:?}")),
                };
                self.pos += 1;
                self.expect(&Tok::Equals)?;
                match key.as_str() {
                    "PropertyName" => match self.operand()? {
                        Operand::Lit(Lit::Str(s)) => property = Some(s),
                        _ => return Err("In: PropertyName must be a string".to_owned()),
                    },
                    "PropertyValues" => {
                        self.expect(&Tok::LBracket)?;
                        let mut list = Vec::new();
                        while self.peek() != Some(&Tok::RBracket) {
                            match self.operand()? {
                                Operand::Lit(lit) => list.push(lit),
                                Operand::Path(_) => {
                                    return Err("In: PropertyValues must be literals".to_owned());
                                }
                            }
                            if self.peek() == Some(&Tok::Comma) {
                                self.pos += 1;
                            }
                        }
                        self.pos += 1;
                        values = Some(list);
                    }
                    other => return Err(format!("In: unknown parameter '{other}'")),
                }
                match self.peek() {
                    Some(Tok::Comma) => self.pos += 1,
                    Some(Tok::RParen) => {
                        self.pos += 1;
                        break;
                    }
                    other => return Err(format!("In: expected ',' or ')', found {other:?}")),
                }
            }
            let property = property.ok_or("In: PropertyName is required")?;
            let values = values.ok_or("In: PropertyValues is required")?;
            return Ok(Expr::In(property, values));
        }
        Err(format!("the function '{name}' is not supported"))
    }

    fn operand(&mut self) -> Result<Operand, String> {
        match self.peek().cloned() {
            Some(Tok::Date(d)) => {
                self.pos += 1;
                Ok(Operand::Lit(Lit::Str(d)))
            }
            Some(Tok::Str(s)) => {
                self.pos += 1;
                Ok(Operand::Lit(Lit::Str(s)))
            }
            Some(Tok::Word(w)) => {
                self.pos += 1;
                if let Some(alias) = w.strip_prefix('@') {
                    let raw = self
                        .aliases
                        .get(&w)
                        .ok_or_else(|| format!("the parameter alias '@{alias}' is not defined"))?;
                    let tokens = tokenize(raw)?;
                    let mut sub = Parser {
                        tokens,
                        pos: 0,
                        aliases: self.aliases,
                    };
                    return sub.operand();
                }
                if let Some(lit) = word_literal(&w) {
                    return Ok(Operand::Lit(lit));
                }
                if !w
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_')
                {
                    return Err(format!("'{w}' is not a valid literal"));
                }
                let mut path = vec![w];
                while self.peek() == Some(&Tok::Slash) {
                    match self.tokens.get(self.pos + 1) {
                        Some(Tok::Word(next)) if next == "any" || next == "all" => break,
                        Some(Tok::Word(next)) => {
                            path.push(next.clone());
                            self.pos += 2;
                        }
                        _ => break,
                    }
                }
                Ok(Operand::Path(path))
            }
            other => Err(format!("expected a property or a literal, found {other:?}")),
        }
    }
}

fn word_literal(word: &str) -> Option<Lit> {
    match word {
        "null" => return Some(Lit::Null),
        "true" => return Some(Lit::Bool(true)),
        "false" => return Some(Lit::Bool(false)),
        _ => {}
    }
    if word.len() == 36
        && let Ok(guid) = Uuid::parse_str(word)
    {
        return Some(Lit::Guid(guid));
    }
    if let Ok(n) = word.parse::<i64>() {
        return Some(Lit::Int(n));
    }
    let numeric = word
        .trim_end_matches(['m', 'M', 'd', 'D'])
        .parse::<f64>()
        .ok()
        .filter(|_| word.starts_with(|c: char| c.is_ascii_digit() || c == '-'));
    numeric.map(Lit::Dec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Expr {
        parse(text, &HashMap::new()).unwrap()
    }

    #[test]
    fn parses_precedence_and_literals() {
        let e = p("a eq 'it''s' or b ne null and not (c gt 5)");
        let Expr::Or(left, right) = e else {
            panic!("{e:?}")
        };
        assert_eq!(
            *left,
            Expr::Cmp(
                Operand::Path(vec!["a".into()]),
                Op::Eq,
                Operand::Lit(Lit::Str("it's".into()))
            )
        );
        assert!(matches!(*right, Expr::And(_, _)));
        let g = p("_listid_value eq 5f8c0a0e-0000-4000-8000-000000000001");
        assert!(matches!(
            g,
            Expr::Cmp(_, Op::Eq, Operand::Lit(Lit::Guid(_)))
        ));
        assert!(matches!(
            p("x ge -1.5"),
            Expr::Cmp(_, Op::Ge, Operand::Lit(Lit::Dec(_)))
        ));
    }

    #[test]
    fn parses_lambda_functions_and_in() {
        let e =
            p("listcontact_association/any(l:l/listid eq 5f8c0a0e-0000-4000-8000-000000000001)");
        let Expr::Lambda {
            nav,
            var,
            body,
            all,
        } = e
        else {
            panic!()
        };
        assert_eq!(
            (nav.as_str(), var.as_str(), all),
            ("listcontact_association", "l", false)
        );
        assert!(body.is_some());
        let e = p(
            "Microsoft.Dynamics.CRM.In(PropertyName='emailaddress1',PropertyValues=['a@x','b@x'])",
        );
        assert_eq!(
            e,
            Expr::In(
                "emailaddress1".into(),
                vec![Lit::Str("a@x".into()), Lit::Str("b@x".into())]
            )
        );
        assert!(matches!(
            p("startswith(fullname,'A')"),
            Expr::Text(TextFn::StartsWith, _, _)
        ));
        let e = p("sdkmessageid/name eq 'CreateMultiple' and primaryobjecttypecode eq 'contact'");
        let Expr::And(left, _) = e else { panic!() };
        assert!(matches!(*left, Expr::Cmp(Operand::Path(ref p), _, _) if p.len() == 2));
    }

    #[test]
    fn resolves_aliases_and_refuses_the_unsupported() {
        let aliases = HashMap::from([("@m".to_owned(), "'CreateMultiple'".to_owned())]);
        let e = parse("name eq @m", &aliases).unwrap();
        assert_eq!(
            e,
            Expr::Cmp(
                Operand::Path(vec!["name".into()]),
                Op::Eq,
                Operand::Lit(Lit::Str("CreateMultiple".into()))
            )
        );
        for bad in [
            "a eq",
            "tolower(a) eq 'x'",
            "a has 'x'",
            "a eq 'x",
            "a eq 1 b",
            "geo.distance(a,b) lt 1",
        ] {
            assert!(parse(bad, &HashMap::new()).is_err(), "{bad}");
        }
    }
}
