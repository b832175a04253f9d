//! Invariants (`ElementDefinition.constraint`): FHIRPath expressions compiled once per
//! distinct text (see `tree.rs`), evaluated with the element as `$this`.

use fhirpath::{Collection, EvalContext, Expression, Item, Node};

/// Constraints not evaluated through FHIRPath: checked natively or known not to be
/// evaluable faithfully here (reporting them would be false errors).
const NATIVE_OR_SKIPPED: &[&str] = &[
    "ele-1", // empty elements: the structure check reports `{}`, `[]` and nulls
    "ext-1", // checked natively (walk.rs)
    "dom-3", // checked natively (walk.rs): R4's expression applies as() to collections
    "txt-1", // XHTML content rules: checked by `xhtml.rs`
    "txt-2", // the Java validator evaluates its htmlChecks() as txt-1's: judged with it
    "que-7", // `answer is Boolean` is false for FHIR booleans in strict FHIRPath typing
];

/// Published R4 expressions that contradict their own rule (the `human` text) and were
/// corrected by a technical correction (R4B/R5): (key, R4 expression, corrected one).
/// An expression is replaced only when it is exactly the erroneous R4 text.
const CORRECTED: &[(&str, &str, &str)] = &[
    (
        // "If there are more than one enableWhen, enableBehavior must be specified"
        "que-12",
        "enableWhen.count() > 2 implies enableBehavior.exists()",
        "enableWhen.count() > 1 implies enableBehavior.exists()",
    ),
    (
        // R5 allows a targetProfile on resource-typed parameters too (its opd-3 human text),
        // as the Java validator does on R4 content.
        "opd-3",
        "targetProfile.exists() implies (type = 'Reference' or type = 'canonical')",
        "targetProfile.exists() implies (type = 'Reference' or type = 'canonical' or type.memberOf('http://hl7.org/fhir/ValueSet/resource-types'))",
    ),
];

/// The result of one invariant on one element.
pub enum Outcome {
    Holds,
    Fails,
    /// Could not be evaluated (unsupported function, evaluation error): not reported.
    Unknown,
}

pub struct Invariants;

impl Invariants {
    pub fn is_skipped(key: &str) -> bool {
        NATIVE_OR_SKIPPED.contains(&key)
    }

    /// The expression to evaluate for constraint `key` (see [`CORRECTED`]).
    pub fn corrected<'a>(key: &str, expression: &'a str) -> &'a str {
        CORRECTED
            .iter()
            .find(|(k, wrong, _)| *k == key && *wrong == expression)
            .map_or(expression, |(_, _, right)| right)
    }

    /// Evaluates `expr` over `node`: true holds; false and empty fail, as in the HL7
    /// Java validator (whose engine makes type and string tests of nothing false:
    /// `EvalContext::set_empty_tests_false`).
    pub fn evaluate<'a>(ctx: &EvalContext<'a>, expr: &Expression, node: Node<'a>) -> Outcome {
        match expr.evaluate_collection(ctx, Collection::one(Item::Node(node))) {
            Ok(c) => match c.0.as_slice() {
                [] => Outcome::Fails,
                [Item::Boolean(true)] => Outcome::Holds,
                [Item::Boolean(false)] => Outcome::Fails,
                _ => Outcome::Unknown,
            },
            Err(e) => {
                if std::env::var_os("FHIR_VALIDATION_DEBUG").is_some() {
                    eprintln!("invariant not evaluated: {}: {e}", expr.source());
                }
                Outcome::Unknown
            }
        }
    }
}
