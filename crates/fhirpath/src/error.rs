//! Error types: [`ParseError`] (compile time, with the position) and [`EvalError`].

/// An expression that cannot be compiled: a syntax error, or an unknown function or a
/// wrong number of arguments. The position is 1-based (line, column in characters) and
/// `offset` is the byte offset in the expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at line {line}, column {column}")]
pub struct ParseError {
    pub message: String,
    pub offset: usize,
    pub line: usize,
    pub column: usize,
}

impl ParseError {
    pub(crate) fn at(src: &str, offset: usize, message: impl Into<String>) -> ParseError {
        let offset = offset.min(src.len());
        let mut line = 1;
        let mut column = 1;
        for (i, c) in src.char_indices() {
            if i >= offset {
                break;
            }
            if c == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        ParseError {
            message: message.into(),
            offset,
            line,
            column,
        }
    }
}

/// An error while evaluating a compiled expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// The expression does not fit the model: an element the type does not have, a
    /// choice element named with its type suffix (`valueQuantity`), a wrong context type.
    #[error("semantic error: {0}")]
    Semantic(String),
    /// A type specifier that names no known type.
    #[error("unknown type '{0}'")]
    UnknownType(String),
    /// An operand or argument of the wrong type (`'a' - 'b'`, `1 > true`).
    #[error("type error: {0}")]
    Type(String),
    /// A collection with several items where one item is required.
    #[error("{0}: expected a single item, got {1}")]
    NotSingleton(String, usize),
    /// An invalid argument value (bad regular expression, unknown encoding…).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("unknown variable %{0}")]
    UnknownVariable(String),
    #[error("arithmetic overflow")]
    Overflow,
    /// The expression or the data nests deeper than the evaluator allows.
    #[error("evaluation too deep (limit {0})")]
    TooDeep(usize),
    /// The request's time budget ran out during evaluation ([`fhir_model::budget`]).
    #[error("evaluation stopped: the request's time budget is spent")]
    OutOfTime,
    /// A caller-provided hook (resolver, terminology, profile validation) failed or is
    /// missing.
    #[error("{0}")]
    Hook(String),
}

pub type EvalResult<T> = Result<T, EvalError>;
