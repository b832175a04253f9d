//! The parser: tokens to [`Expr`], by precedence climbing. Function names and argument
//! counts are checked here, so a compiled expression only fails on data.

use std::str::FromStr;

use rust_decimal::Decimal;

use crate::ast::{BinaryOp, Expr, Literal, TypeSpec, UnaryOp};
use crate::datetime::{Date, DateTime, Time};
use crate::error::ParseError;
use crate::functions::{self, Func};
use crate::lexer::{tokenize, Tok, Token};
use crate::quantity::{calendar_unit, Quantity};

/// Deepest nesting the parser accepts (parentheses, arguments, operators).
const MAX_DEPTH: usize = 256;

pub fn parse(src: &str) -> Result<Expr, ParseError> {
    let tokens = tokenize(src)?;
    let mut p = Parser {
        src,
        tokens,
        pos: 0,
        depth: 0,
    };
    let e = p.expression(0)?;
    if p.peek() != &Tok::Eof {
        return Err(p.error_here("unexpected input after the end of the expression"));
    }
    Ok(e)
}

struct Parser<'s> {
    src: &'s str,
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

/// Binding power of binary operators (higher binds tighter).
fn binary_op(tok: &Tok) -> Option<(BinaryOp, u8)> {
    let op = match tok {
        Tok::Sym(s) => match *s {
            "*" => (BinaryOp::Mul, 10),
            "/" => (BinaryOp::Div, 10),
            "+" => (BinaryOp::Add, 9),
            "-" => (BinaryOp::Sub, 9),
            "&" => (BinaryOp::Concat, 9),
            "|" => (BinaryOp::Union, 7),
            "<" => (BinaryOp::Lt, 6),
            ">" => (BinaryOp::Gt, 6),
            "<=" => (BinaryOp::Le, 6),
            ">=" => (BinaryOp::Ge, 6),
            "=" => (BinaryOp::Eq, 5),
            "!=" => (BinaryOp::Ne, 5),
            "~" => (BinaryOp::Equiv, 5),
            "!~" => (BinaryOp::NotEquiv, 5),
            _ => return None,
        },
        Tok::Ident(s) => match s.as_str() {
            "div" => (BinaryOp::IntDiv, 10),
            "mod" => (BinaryOp::Mod, 10),
            "in" => (BinaryOp::In, 4),
            "contains" => (BinaryOp::Contains, 4),
            "and" => (BinaryOp::And, 3),
            "or" => (BinaryOp::Or, 2),
            "xor" => (BinaryOp::Xor, 2),
            "implies" => (BinaryOp::Implies, 1),
            _ => return None,
        },
        _ => return None,
    };
    Some(op)
}

/// Binding power of `is` / `as`.
const TYPE_OP_POWER: u8 = 8;
const UNARY_POWER: u8 = 11;

impl<'s> Parser<'s> {
    fn peek(&self) -> &Tok {
        &self.tokens[self.pos.min(self.tokens.len() - 1)].tok
    }

    fn peek_at(&self, n: usize) -> &Tok {
        &self.tokens[(self.pos + n).min(self.tokens.len() - 1)].tok
    }

    fn offset(&self) -> usize {
        self.tokens[self.pos.min(self.tokens.len() - 1)].start
    }

    fn next(&mut self) -> Token {
        let t = self.tokens[self.pos.min(self.tokens.len() - 1)].clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn error_here(&self, msg: &str) -> ParseError {
        let found = match self.peek() {
            Tok::Eof => "end of expression".to_string(),
            Tok::Ident(s) | Tok::Number(s) => format!("'{s}'"),
            Tok::QuotedIdent(s) => format!("`{s}`"),
            Tok::Str(s) => format!("string '{s}'"),
            Tok::DateTime(s) => format!("'@{s}'"),
            Tok::Time(s) => format!("'@T{s}'"),
            Tok::Special(s) => format!("'${s}'"),
            Tok::Env(s) => format!("'%{s}'"),
            Tok::Sym(s) => format!("'{s}'"),
        };
        ParseError::at(self.src, self.offset(), format!("{msg} (found {found})"))
    }

    fn expect(&mut self, sym: &'static str) -> Result<(), ParseError> {
        if self.peek() == &Tok::Sym(sym) {
            self.next();
            Ok(())
        } else {
            Err(self.error_here(&format!("expected '{sym}'")))
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError::at(
                self.src,
                self.offset(),
                "expression nested too deeply",
            ));
        }
        Ok(())
    }

    fn expression(&mut self, min_power: u8) -> Result<Expr, ParseError> {
        let base = self.depth;
        self.enter()?;
        let mut left = self.unary()?;
        loop {
            // Each operator nests the tree one level deeper: count it like a nesting.
            self.enter()?;
            let tok = self.peek().clone();
            if let Tok::Ident(word) = &tok {
                if (word == "is" || word == "as") && TYPE_OP_POWER > min_power {
                    self.next();
                    let spec = self.type_spec()?;
                    left = if word == "is" {
                        Expr::Is(Box::new(left), spec)
                    } else {
                        Expr::As(Box::new(left), spec)
                    };
                    continue;
                }
            }
            let Some((op, power)) = binary_op(&tok) else {
                break;
            };
            if power <= min_power {
                break;
            }
            self.next();
            let right = self.expression(power)?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
        self.depth = base;
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        let op = match self.peek() {
            Tok::Sym("+") => UnaryOp::Plus,
            Tok::Sym("-") => UnaryOp::Minus,
            _ => return self.postfix(),
        };
        self.next();
        self.enter()?;
        let operand = self.expression(UNARY_POWER)?;
        self.depth -= 1;
        Ok(Expr::Unary(op, Box::new(operand)))
    }

    fn identifier(&mut self) -> Result<String, ParseError> {
        match self.peek().clone() {
            Tok::Ident(s) | Tok::QuotedIdent(s) => {
                self.next();
                Ok(s)
            }
            _ => Err(self.error_here("expected an identifier")),
        }
    }

    fn type_spec(&mut self) -> Result<TypeSpec, ParseError> {
        let first = self.identifier()?;
        if self.peek() == &Tok::Sym(".")
            && matches!(self.peek_at(1), Tok::Ident(_) | Tok::QuotedIdent(_))
        {
            self.next();
            let name = self.identifier()?;
            return Ok(TypeSpec {
                namespace: Some(first),
                name,
            });
        }
        Ok(TypeSpec {
            namespace: None,
            name: first,
        })
    }

    fn postfix(&mut self) -> Result<Expr, ParseError> {
        let base = self.depth;
        let mut e = self.term()?;
        loop {
            self.enter()?;
            match self.peek() {
                Tok::Sym(".") => {
                    self.next();
                    let pos = self.offset();
                    let name = self.identifier()?;
                    if self.peek() == &Tok::Sym("(") {
                        e = self.call(Some(e), name, pos)?;
                    } else {
                        e = Expr::Member(Box::new(e), name);
                    }
                }
                Tok::Sym("[") => {
                    self.next();
                    self.enter()?;
                    let idx = self.expression(0)?;
                    self.depth -= 1;
                    self.expect("]")?;
                    e = Expr::Index(Box::new(e), Box::new(idx));
                }
                _ => {
                    self.depth = base;
                    return Ok(e);
                }
            }
        }
    }

    fn call(&mut self, target: Option<Expr>, name: String, pos: usize) -> Result<Expr, ParseError> {
        self.expect("(")?;
        let mut args = Vec::new();
        if self.peek() != &Tok::Sym(")") {
            loop {
                self.enter()?;
                args.push(self.expression(0)?);
                self.depth -= 1;
                if self.peek() == &Tok::Sym(",") {
                    self.next();
                    continue;
                }
                break;
            }
        }
        self.expect(")")?;
        let Some((func, min, max)) = functions::lookup(&name) else {
            return Err(ParseError::at(
                self.src,
                pos,
                format!("unknown function '{name}'"),
            ));
        };
        if args.len() < min || args.len() > max {
            let expected = if min == max {
                format!("{min}")
            } else if max == usize::MAX {
                format!("at least {min}")
            } else {
                format!("{min} to {max}")
            };
            return Err(ParseError::at(
                self.src,
                pos,
                format!(
                    "function '{name}' takes {expected} argument(s), got {}",
                    args.len()
                ),
            ));
        }
        let mut type_arg = None;
        if matches!(func, Func::Is | Func::As | Func::OfType) {
            let spec = args.first().and_then(expr_type_spec);
            match spec {
                Some(s) => type_arg = Some(s),
                None => {
                    return Err(ParseError::at(
                        self.src,
                        pos,
                        format!("function '{name}' expects a type name"),
                    ))
                }
            }
        }
        Ok(Expr::Call {
            target: target.map(Box::new),
            func,
            args,
            type_arg,
            pos,
        })
    }

    fn term(&mut self) -> Result<Expr, ParseError> {
        let start = self.offset();
        let before = self.pos;
        let tok = self.next();
        let e = match tok.tok {
            Tok::Sym("(") => {
                self.enter()?;
                let e = self.expression(0)?;
                self.depth -= 1;
                self.expect(")")?;
                e
            }
            Tok::Sym("{") => {
                self.expect("}")?;
                Expr::Literal(Literal::Empty)
            }
            Tok::Str(s) => Expr::Literal(Literal::String(s)),
            Tok::Number(n) => self.number(&n, start)?,
            Tok::DateTime(s) => {
                if s.contains('T') {
                    let dt = DateTime::parse(&s).ok_or_else(|| {
                        ParseError::at(self.src, start, "invalid date/time literal")
                    })?;
                    Expr::Literal(Literal::DateTime(dt))
                } else {
                    let d = Date::parse(&s)
                        .ok_or_else(|| ParseError::at(self.src, start, "invalid date literal"))?;
                    Expr::Literal(Literal::Date(d))
                }
            }
            Tok::Time(s) => {
                let t = Time::parse(&s)
                    .ok_or_else(|| ParseError::at(self.src, start, "invalid time literal"))?;
                Expr::Literal(Literal::Time(t))
            }
            Tok::Special(s) => match s.as_str() {
                "this" => Expr::This,
                "index" => Expr::IndexVar,
                _ => Expr::Total,
            },
            Tok::Env(s) => Expr::Env(s),
            Tok::Ident(s) => match s.as_str() {
                "true" => Expr::Literal(Literal::Boolean(true)),
                "false" => Expr::Literal(Literal::Boolean(false)),
                _ if self.peek() == &Tok::Sym("(") => return self.call(None, s, start),
                _ => Expr::Ident(s),
            },
            Tok::QuotedIdent(s) => {
                if self.peek() == &Tok::Sym("(") {
                    return self.call(None, s, start);
                }
                Expr::Ident(s)
            }
            _ => {
                self.pos = before;
                return Err(self.error_here("expected an expression"));
            }
        };
        Ok(e)
    }

    fn number(&mut self, text: &str, start: usize) -> Result<Expr, ParseError> {
        // A quantity: a number followed by a unit string or a calendar duration keyword.
        let unit = match self.peek() {
            Tok::Str(u) => Some(u.clone()),
            Tok::Ident(w) if calendar_unit(w).is_some() => Some(w.clone()),
            _ => None,
        };
        let decimal = || {
            Decimal::from_str(text)
                .map_err(|_| ParseError::at(self.src, start, "number out of range"))
        };
        if let Some(unit) = unit {
            self.next();
            return Ok(Expr::Literal(Literal::Quantity(Quantity::new(
                decimal()?,
                unit,
            ))));
        }
        if text.contains('.') {
            return Ok(Expr::Literal(Literal::Decimal(decimal()?)));
        }
        match text.parse::<i64>() {
            Ok(i) => Ok(Expr::Literal(Literal::Integer(i))),
            Err(_) => Ok(Expr::Literal(Literal::Decimal(decimal()?))),
        }
    }
}

/// The type name given as an argument to `is()`, `as()`, `ofType()`.
fn expr_type_spec(e: &Expr) -> Option<TypeSpec> {
    match e {
        Expr::Ident(name) => Some(TypeSpec {
            namespace: None,
            name: name.clone(),
        }),
        Expr::Member(ns, name) => match &**ns {
            Expr::Ident(ns) => Some(TypeSpec {
                namespace: Some(ns.clone()),
                name: name.clone(),
            }),
            _ => None,
        },
        _ => None,
    }
}
