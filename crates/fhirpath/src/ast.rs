//! The syntax tree of a compiled expression.

use rust_decimal::Decimal;

use crate::datetime::{Date, DateTime, Time};
use crate::functions::Func;
use crate::quantity::Quantity;

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Empty,
    Boolean(bool),
    String(String),
    Integer(i64),
    Decimal(Decimal),
    Date(Date),
    DateTime(DateTime),
    Time(Time),
    Quantity(Quantity),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Plus,
    Minus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Mul,
    Div,
    IntDiv,
    Mod,
    Add,
    Sub,
    Concat,
    Union,
    Lt,
    Gt,
    Le,
    Ge,
    Eq,
    Ne,
    Equiv,
    NotEquiv,
    In,
    Contains,
    And,
    Or,
    Xor,
    Implies,
}

/// A type specifier: `Patient`, `FHIR.Quantity`, `System.String`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeSpec {
    pub namespace: Option<String>,
    pub name: String,
}

impl std::fmt::Display for TypeSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(Literal),
    /// An identifier starting a path: a type name (`Patient`) or an element of `$this`.
    Ident(String),
    /// `target.name`
    Member(Box<Expr>, String),
    /// A function call: `target.name(args)` or `name(args)` (target `$this`).
    Call {
        target: Option<Box<Expr>>,
        func: Func,
        args: Vec<Expr>,
        /// The type argument of `is()`, `as()`, `ofType()`.
        type_arg: Option<TypeSpec>,
        /// Byte offset of the function name.
        pos: usize,
    },
    Index(Box<Expr>, Box<Expr>),
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    Is(Box<Expr>, TypeSpec),
    As(Box<Expr>, TypeSpec),
    This,
    IndexVar,
    Total,
    /// `%name`
    Env(String),
}
