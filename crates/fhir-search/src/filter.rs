//! `_filter` (search_filter.html): the expression language parsed into a tree of
//! `and`, `or`, `not` and tests, each test compiled to the same [`Clause`] an ordinary
//! search parameter becomes (`given eq "peter"` is `given` with a whole-string match,
//! `birthdate ge 2014-10-10` is `birthdate=ge2014-10-10`, `subject.name co "pet"` a
//! chain with `:contains`), so the store runs them with the same SQL.
//!
//! Operators: `eq`, `ne`, `co`, `sw`, `gt`, `lt`, `ge`, `le`, `sa`, `eb`, `ap`, `pr`,
//! `ss`, `sb`, `in`, `ni`, `re`, `ew` (strings). Not supported (an error that says so):
//! filters on a parameter's parts (`related[type eq x].target`; R4 has no `related`
//! parameter, the spec's examples name the STU3 one).

use fhir_model::SearchParamType;

use crate::error::SearchError;
use crate::query::{Clause, Modifier};
use crate::registry::SearchRegistry;

/// A parsed `_filter`.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterExpr {
    And(Vec<FilterExpr>),
    Or(Vec<FilterExpr>),
    Not(Box<FilterExpr>),
    /// One test, as the criterion it means.
    Test(Box<Clause>),
}

impl FilterExpr {
    /// The criteria of its tests, in order.
    pub fn clauses(&self) -> Vec<&Clause> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a Clause>) {
        match self {
            FilterExpr::And(xs) | FilterExpr::Or(xs) => xs.iter().for_each(|x| x.collect(out)),
            FilterExpr::Not(x) => x.collect(out),
            FilterExpr::Test(c) => out.push(c),
        }
    }

    /// The criteria of its tests, to change in place.
    pub fn clauses_mut(&mut self) -> Vec<&mut Clause> {
        match self {
            FilterExpr::And(xs) | FilterExpr::Or(xs) => {
                xs.iter_mut().flat_map(|x| x.clauses_mut()).collect()
            }
            FilterExpr::Not(x) => x.clauses_mut(),
            FilterExpr::Test(c) => vec![&mut **c],
        }
    }
}

/// Tests one `_filter` may hold.
const MAX_TESTS: usize = 50;
/// Nested parentheses and `not(…)` one `_filter` may hold.
const MAX_NESTING: usize = 16;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    Word(String),
    Quoted(String),
}

/// Parses `text` for a search of `types`.
pub fn parse_filter(
    reg: &SearchRegistry,
    types: &[String],
    name: &str,
    text: &str,
) -> Result<FilterExpr, SearchError> {
    let err = |m: String| SearchError::value(name, m);
    let toks = lex(text).map_err(&err)?;
    let mut p = Parser {
        toks,
        pos: 0,
        reg,
        types,
        tests: 0,
        nesting: 0,
    };
    let expr = p.or().map_err(&err)?;
    if p.pos < p.toks.len() {
        return Err(err(format!(
            "unexpected {} after a complete filter",
            shown(&p.toks[p.pos])
        )));
    }
    Ok(expr)
}

fn shown(t: &Tok) -> String {
    match t {
        Tok::Open => "'('".into(),
        Tok::Close => "')'".into(),
        Tok::Word(w) => format!("'{w}'"),
        Tok::Quoted(q) => format!("\"{q}\""),
    }
}

fn lex(text: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                out.push(Tok::Open);
            }
            ')' => {
                chars.next();
                out.push(Tok::Close);
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err("a quoted value is not closed".into()),
                        Some('\\') => s.extend(chars.next()),
                        Some('"') => break,
                        Some(c) => s.push(c),
                    }
                }
                out.push(Tok::Quoted(s));
            }
            _ => {
                let mut w = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == '(' || c == ')' || c == '"' {
                        break;
                    }
                    w.push(c);
                    chars.next();
                }
                out.push(Tok::Word(w));
            }
        }
    }
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    reg: &'a SearchRegistry,
    types: &'a [String],
    tests: usize,
    nesting: usize,
}

impl Parser<'_> {
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok::Word(x)) if x == w)
    }

    fn or(&mut self) -> Result<FilterExpr, String> {
        let mut xs = vec![self.and()?];
        while self.peek_word("or") {
            self.pos += 1;
            xs.push(self.and()?);
        }
        Ok(if xs.len() == 1 {
            xs.remove(0)
        } else {
            FilterExpr::Or(xs)
        })
    }

    fn and(&mut self) -> Result<FilterExpr, String> {
        let mut xs = vec![self.unary()?];
        while self.peek_word("and") {
            self.pos += 1;
            xs.push(self.unary()?);
        }
        Ok(if xs.len() == 1 {
            xs.remove(0)
        } else {
            FilterExpr::And(xs)
        })
    }

    fn unary(&mut self) -> Result<FilterExpr, String> {
        if self.peek_word("not") && self.toks.get(self.pos + 1) == Some(&Tok::Open) {
            self.pos += 1;
            return Ok(FilterExpr::Not(Box::new(self.group()?)));
        }
        if self.toks.get(self.pos) == Some(&Tok::Open) {
            return self.group();
        }
        self.test()
    }

    fn group(&mut self) -> Result<FilterExpr, String> {
        self.pos += 1; // '('
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(format!("parentheses nest deeper than {MAX_NESTING}"));
        }
        let inner = self.or()?;
        self.nesting -= 1;
        match self.toks.get(self.pos) {
            Some(Tok::Close) => {
                self.pos += 1;
                Ok(inner)
            }
            _ => Err("a '(' is not closed".into()),
        }
    }

    fn next(&mut self, what: &str) -> Result<Tok, String> {
        let t = self
            .toks
            .get(self.pos)
            .cloned()
            .ok_or_else(|| format!("the filter ends where {what} was expected"))?;
        self.pos += 1;
        Ok(t)
    }

    fn test(&mut self) -> Result<FilterExpr, String> {
        self.tests += 1;
        if self.tests > MAX_TESTS {
            return Err(format!("a filter may hold at most {MAX_TESTS} tests"));
        }
        let path = match self.next("a parameter")? {
            Tok::Word(w) => w,
            other => return Err(format!("expected a parameter, found {}", shown(&other))),
        };
        if path.contains('[') {
            return Err(format!(
                "'{path}': filters on the parts of a parameter ([...]) are not supported"
            ));
        }
        let op = match self.next("an operator")? {
            Tok::Word(w) => w,
            other => return Err(format!("expected an operator, found {}", shown(&other))),
        };
        let value = match self.next("a value")? {
            Tok::Word(w) | Tok::Quoted(w) => w,
            other => return Err(format!("expected a value, found {}", shown(&other))),
        };
        let clause = test_clause(self.reg, self.types, &path, &op, &value)?;
        Ok(clause)
    }
}

/// `path op value` as a criterion (negated for `ne` where no prefix says it).
fn test_clause(
    reg: &SearchRegistry,
    types: &[String],
    path: &str,
    op: &str,
    value: &str,
) -> Result<FilterExpr, String> {
    let escaped = value.replace(',', "\\,");
    let parse = |name: &str, v: &str| {
        crate::parse::parse_clause(reg, types, name, name, v, true).map_err(|e| e.to_string())
    };
    let test = |c: Clause| FilterExpr::Test(Box::new(c));
    match op {
        "pr" => {
            let present = match value {
                "true" => "false",
                "false" => "true",
                _ => return Err(format!("pr takes true or false, not '{value}'")),
            };
            return Ok(test(parse(&format!("{path}:missing"), present)?));
        }
        "co" => return Ok(test(parse(&format!("{path}:contains"), &escaped)?)),
        "sw" => return Ok(test(parse(path, &escaped)?)),
        "ss" => return Ok(test(parse(&format!("{path}:below"), &escaped)?)),
        "sb" => return Ok(test(parse(&format!("{path}:above"), &escaped)?)),
        "in" => return Ok(test(parse(&format!("{path}:in"), &escaped)?)),
        "ni" => return Ok(test(parse(&format!("{path}:not-in"), &escaped)?)),
        "ew" => {
            let mut clause = parse(path, &escaped)?;
            if kind_of(&clause) != Some(SearchParamType::String) {
                return Err(format!(
                    "ew compares strings; '{path}' is not a string parameter"
                ));
            }
            set_modifier(&mut clause, Modifier::EndsWith);
            return Ok(test(clause));
        }
        _ => {}
    }
    let prefixed = ["gt", "lt", "ge", "le", "sa", "eb", "ap"].contains(&op);
    if !prefixed && !matches!(op, "eq" | "ne" | "re") {
        return Err(format!("'{op}' is not a filter operator"));
    }
    let kind = kind_of(&parse(path, &escaped).or_else(|_| parse(path, "x"))?);
    let ordered = matches!(
        kind,
        Some(SearchParamType::Date | SearchParamType::Number | SearchParamType::Quantity)
    );
    if prefixed && !ordered {
        return Err(format!("{op} compares dates, numbers and quantities only"));
    }
    if ordered && op != "re" {
        // eq, ne and the comparisons are the value's prefix.
        return Ok(test(parse(path, &format!("{op}{escaped}"))?));
    }
    let mut clause = parse(path, &escaped)?;
    if kind == Some(SearchParamType::String) {
        set_modifier(&mut clause, Modifier::Equals);
    }
    Ok(if op == "ne" {
        FilterExpr::Not(Box::new(test(clause)))
    } else {
        test(clause)
    })
}

fn kind_of(c: &Clause) -> Option<SearchParamType> {
    match c {
        Clause::Param(p) => Some(p.param.kind),
        _ => None,
    }
}

fn set_modifier(c: &mut Clause, m: Modifier) {
    if let Clause::Param(p) = c {
        if p.modifier.is_none() {
            p.modifier = Some(m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FilterExpr, SearchError> {
        parse_filter(
            SearchRegistry::r4(),
            &["Patient".to_string()],
            "_filter",
            text,
        )
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let e = parse("given eq a or given eq b and family eq c").expect("parses");
        let FilterExpr::Or(xs) = e else {
            panic!("{e:?}")
        };
        assert!(matches!(xs[1], FilterExpr::And(_)));
    }

    #[test]
    fn deep_or_long_input_is_refused_not_overflowed() {
        let deep = format!("{}given eq a{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(parse(&deep)
            .unwrap_err()
            .to_string()
            .contains("nest deeper"));
        let long = vec!["given eq a"; 60].join(" or ");
        assert!(parse(&long).unwrap_err().to_string().contains("at most"));
        assert!(parse("not(").is_err());
        assert!(parse("\"").is_err());
    }
}
