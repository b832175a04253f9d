//! FHIRPath for the server: this crate's one job is to compile FHIRPath expressions and
//! evaluate them over FHIR JSON (`serde_json::Value`), typed by the FHIR R4 definitions
//! of [`fhir_model`].
//!
//! # API
//!
//! - [`compile`] parses an expression once into an [`Expression`] (`Send + Sync`,
//!   reusable, cheap to evaluate). Syntax errors, unknown functions and wrong argument
//!   counts are a [`ParseError`], whose `Display` gives the line and column.
//! - [`Expression::evaluate`] runs it over a JSON input with an [`EvalContext`]
//!   (definitions, `%variables`, `%resource`/`%rootResource`, and the caller's hooks:
//!   [`Resolver`] for `resolve()`, [`TerminologyProvider`] for `memberOf()`,
//!   [`ProfileValidator`] for `conformsTo()`, [`Tracer`] for `trace()`). The result is a
//!   [`Collection`] of [`Item`]s: nodes borrow the input JSON (no copies), System
//!   values (Boolean, String, Integer, Decimal, Date, DateTime, Time, Quantity) are
//!   owned. [`Collection::to_json`] turns it back into JSON. Errors are [`EvalError`].
//!
//! ```
//! use serde_json::json;
//! let patient = json!({"resourceType": "Patient", "name": [{"given": ["Peter", "James"]}]});
//! let expr = fhirpath::compile("Patient.name.given.first()").unwrap();
//! let ctx = fhirpath::EvalContext::new();
//! assert_eq!(expr.evaluate(&ctx, &patient).unwrap().to_json(), json!(["Peter"]));
//! ```
//!
//! Semantics follow FHIRPath 2.0 (N1) with FHIR's additions: choice elements are
//! navigated by their FHIRPath name (`Observation.value`; `valueQuantity` is a
//! semantic error unless [`EvalContext::set_lenient`]), primitives keep their `_name`
//! id and extensions, decimals are exact (never `f64`, except for `exp`, `ln`, `log`,
//! `power` and `sqrt`), quantities convert between common UCUM units and calendar
//! durations, and partial dates compare to empty when precision leaves it undecided.

mod ast;
mod context;
mod datetime;
mod distinct;
mod error;
mod eval;
mod functions;
mod item;
mod lexer;
mod navigation;
mod ops;
mod parser;
mod patch;
mod quantity;
mod typecheck;
mod types;

use std::sync::RwLock;

use serde_json::Value;

pub use context::{EvalContext, ProfileValidator, Resolver, TerminologyProvider, Tracer};
pub use datetime::{Date, DateTime, Time};
pub use error::{EvalError, ParseError};
pub use item::{Collection, Item, Node};
pub use patch::{FhirPathPatch, PatchError};
pub use quantity::Quantity;
pub use rust_decimal::Decimal;

use eval::{Env, Evaluator};

/// A compiled FHIRPath expression.
#[derive(Debug)]
pub struct Expression {
    source: String,
    ast: ast::Expr,
    /// Outcome of the static check per (root type, strict, lenient).
    checked: RwLock<Vec<CheckKey>>,
}

type CheckKey = ((String, bool, bool), Result<(), EvalError>);

impl Clone for Expression {
    fn clone(&self) -> Self {
        Expression {
            source: self.source.clone(),
            ast: self.ast.clone(),
            checked: RwLock::new(Vec::new()),
        }
    }
}

/// Parses `expr` (syntax, function names and argument counts).
pub fn compile(expr: &str) -> Result<Expression, ParseError> {
    Ok(Expression {
        source: expr.to_string(),
        ast: parser::parse(expr)?,
        checked: RwLock::new(Vec::new()),
    })
}

impl Expression {
    /// The text the expression was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates over a JSON input (a resource is typed by its `resourceType`).
    pub fn evaluate<'a>(
        &self,
        ctx: &EvalContext<'a>,
        input: &'a Value,
    ) -> Result<Collection<'a>, EvalError> {
        self.evaluate_collection(ctx, Collection::from_json(ctx.defs, input))
    }

    /// Evaluates with a collection as `%context` and `$this` (e.g. the nodes a composite
    /// search parameter's components are relative to).
    pub fn evaluate_collection<'a>(
        &self,
        ctx: &EvalContext<'a>,
        input: Collection<'a>,
    ) -> Result<Collection<'a>, EvalError> {
        let root_type = input
            .first()
            .and_then(Item::as_node)
            .and_then(|n| n.type_name);
        self.check(ctx, root_type)?;
        let mut ev = Evaluator::new(ctx, input.clone());
        let env = Env {
            this: &input,
            index: None,
            total: None,
        };
        ev.eval(&self.ast, &env)
    }

    /// Checks the expression against the model for inputs of type `root_type` (see
    /// [`EvalContext::set_strict`]); the outcome is remembered per type and mode.
    pub fn check(&self, ctx: &EvalContext<'_>, root_type: Option<&str>) -> Result<(), EvalError> {
        let Some(root_type) = root_type else {
            return Ok(());
        };
        let key = (root_type, ctx.strict, ctx.lenient_choice);
        if let Ok(cache) = self.checked.read() {
            if let Some((_, r)) = cache.iter().find(|(k, _)| (k.0.as_str(), k.1, k.2) == key) {
                return r.clone();
            }
        }
        let r = typecheck::check(
            ctx.defs,
            &self.ast,
            Some(root_type),
            ctx.strict,
            ctx.lenient_choice,
        );
        if let Ok(mut cache) = self.checked.write() {
            if cache.len() < 64 {
                cache.push((
                    (root_type.to_string(), ctx.strict, ctx.lenient_choice),
                    r.clone(),
                ));
            }
        }
        r
    }

    /// Evaluates and returns the result as a JSON array.
    pub fn evaluate_json(&self, ctx: &EvalContext<'_>, input: &Value) -> Result<Value, EvalError> {
        Ok(self.evaluate(ctx, input)?.to_json())
    }
}
