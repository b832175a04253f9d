//! The function library: the FHIRPath N1 set, parts of 2.1 (`sort`, `split`, `join`,
//! `encode`…), and FHIR's additions (`extension`, `resolve`, `memberOf`…).

mod conversion;
mod existence;
mod fhir;
mod filtering;
mod math;
mod strings;
mod subsetting;
mod utility;

use crate::ast::{Expr, TypeSpec};
use crate::error::{EvalError, EvalResult};
use crate::eval::{Env, Evaluator};
use crate::item::{Collection, Item};

macro_rules! funcs {
    ($($variant:ident = $name:literal ($min:expr, $max:expr),)*) => {
        /// A function of the library, resolved at compile time.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Func { $($variant,)* }

        /// The function called `name` with its minimum and maximum argument counts.
        pub fn lookup(name: &str) -> Option<(Func, usize, usize)> {
            match name {
                $($name => Some((Func::$variant, $min, $max)),)*
                _ => None,
            }
        }

        impl Func {
            pub fn name(self) -> &'static str {
                match self { $(Func::$variant => $name,)* }
            }
        }
    };
}

const MANY: usize = usize::MAX;

funcs! {
    Empty = "empty"(0, 0),
    Exists = "exists"(0, 1),
    All = "all"(1, 1),
    AllTrue = "allTrue"(0, 0),
    AnyTrue = "anyTrue"(0, 0),
    AllFalse = "allFalse"(0, 0),
    AnyFalse = "anyFalse"(0, 0),
    SubsetOf = "subsetOf"(1, 1),
    SupersetOf = "supersetOf"(1, 1),
    Count = "count"(0, 0),
    Distinct = "distinct"(0, 0),
    IsDistinct = "isDistinct"(0, 0),
    Not = "not"(0, 0),
    Where = "where"(1, 1),
    Select = "select"(1, 1),
    Repeat = "repeat"(1, 1),
    OfType = "ofType"(1, 1),
    Is = "is"(1, 1),
    As = "as"(1, 1),
    Type = "type"(0, 0),
    Single = "single"(0, 0),
    First = "first"(0, 0),
    Last = "last"(0, 0),
    Tail = "tail"(0, 0),
    Skip = "skip"(1, 1),
    Take = "take"(1, 1),
    Intersect = "intersect"(1, 1),
    Exclude = "exclude"(1, 1),
    Union = "union"(1, 1),
    Combine = "combine"(1, 1),
    Iif = "iif"(2, 3),
    ToBoolean = "toBoolean"(0, 0),
    ConvertsToBoolean = "convertsToBoolean"(0, 0),
    ToInteger = "toInteger"(0, 0),
    ConvertsToInteger = "convertsToInteger"(0, 0),
    ToDecimal = "toDecimal"(0, 0),
    ConvertsToDecimal = "convertsToDecimal"(0, 0),
    ToString = "toString"(0, 0),
    ConvertsToString = "convertsToString"(0, 0),
    ToDate = "toDate"(0, 0),
    ConvertsToDate = "convertsToDate"(0, 0),
    ToDateTime = "toDateTime"(0, 0),
    ConvertsToDateTime = "convertsToDateTime"(0, 0),
    ToTime = "toTime"(0, 0),
    ConvertsToTime = "convertsToTime"(0, 0),
    ToQuantity = "toQuantity"(0, 1),
    ConvertsToQuantity = "convertsToQuantity"(0, 1),
    IndexOf = "indexOf"(1, 1),
    Substring = "substring"(1, 2),
    StartsWith = "startsWith"(1, 1),
    EndsWith = "endsWith"(1, 1),
    Contains = "contains"(1, 1),
    Upper = "upper"(0, 0),
    Lower = "lower"(0, 0),
    Replace = "replace"(2, 2),
    Matches = "matches"(1, 1),
    MatchesFull = "matchesFull"(1, 1),
    ReplaceMatches = "replaceMatches"(2, 2),
    Length = "length"(0, 0),
    ToChars = "toChars"(0, 0),
    Split = "split"(1, 1),
    Join = "join"(0, 1),
    Trim = "trim"(0, 0),
    Encode = "encode"(1, 1),
    Decode = "decode"(1, 1),
    Escape = "escape"(1, 1),
    Unescape = "unescape"(1, 1),
    Abs = "abs"(0, 0),
    Ceiling = "ceiling"(0, 0),
    Exp = "exp"(0, 0),
    Floor = "floor"(0, 0),
    Ln = "ln"(0, 0),
    Log = "log"(1, 1),
    Power = "power"(1, 1),
    Round = "round"(0, 1),
    Sqrt = "sqrt"(0, 0),
    Truncate = "truncate"(0, 0),
    Children = "children"(0, 0),
    Descendants = "descendants"(0, 0),
    Trace = "trace"(1, 2),
    Now = "now"(0, 0),
    TimeOfDay = "timeOfDay"(0, 0),
    Today = "today"(0, 0),
    Aggregate = "aggregate"(1, 2),
    Sort = "sort"(0, MANY),
    LowBoundary = "lowBoundary"(0, 1),
    HighBoundary = "highBoundary"(0, 1),
    Precision = "precision"(0, 0),
    Comparable = "comparable"(1, 1),
    Extension = "extension"(1, 1),
    HasExtension = "hasExtension"(1, 1),
    HasValue = "hasValue"(0, 0),
    GetValue = "getValue"(0, 0),
    Resolve = "resolve"(0, 0),
    MemberOf = "memberOf"(1, 1),
    ConformsTo = "conformsTo"(1, 1),
    HtmlChecks = "htmlChecks"(0, 0),
    Subsumes = "subsumes"(1, 1),
    SubsumedBy = "subsumedBy"(1, 1),
}

impl Func {
    /// Functions whose result depends on the order of their input.
    pub fn is_ordered(self) -> bool {
        matches!(
            self,
            Func::First | Func::Last | Func::Tail | Func::Skip | Func::Take | Func::Single
        )
    }
}

pub(crate) type Args<'x> = &'x [Expr];

/// Calls `func` on `input`.
pub(crate) fn call<'a>(
    ev: &mut Evaluator<'_, 'a>,
    func: Func,
    input: Collection<'a>,
    args: Args,
    type_arg: Option<&TypeSpec>,
    env: &Env<'_, 'a>,
    has_target: bool,
) -> EvalResult<Collection<'a>> {
    use Func::*;
    match func {
        Empty | Exists | All | AllTrue | AnyTrue | AllFalse | AnyFalse | SubsetOf | SupersetOf
        | Count | Distinct | IsDistinct | Not => existence::call(ev, func, input, args, env),
        Where | Select | Repeat | OfType | Is | As | Type => {
            filtering::call(ev, func, input, args, type_arg, env)
        }
        Single | First | Last | Tail | Skip | Take | Intersect | Exclude | Union | Combine => {
            subsetting::call(ev, func, input, args, env)
        }
        Iif | ToBoolean | ConvertsToBoolean | ToInteger | ConvertsToInteger | ToDecimal
        | ConvertsToDecimal | ToString | ConvertsToString | ToDate | ConvertsToDate
        | ToDateTime | ConvertsToDateTime | ToTime | ConvertsToTime | ToQuantity
        | ConvertsToQuantity => conversion::call(ev, func, input, args, env, has_target),
        Join => strings::join(ev, input, args, env),
        IndexOf | Substring | StartsWith | EndsWith | Contains | Upper | Lower | Replace
        | Matches | MatchesFull | ReplaceMatches | Length | ToChars | Split | Trim | Encode
        | Decode | Escape | Unescape => strings::call(ev, func, input, args, env),
        Abs | Ceiling | Exp | Floor | Ln | Log | Power | Round | Sqrt | Truncate => {
            math::call(ev, func, input, args, env)
        }
        Children | Descendants | Trace | Now | TimeOfDay | Today | Aggregate | Sort
        | LowBoundary | HighBoundary | Precision | Comparable => {
            utility::call(ev, func, input, args, env)
        }
        Extension | HasExtension | HasValue | GetValue | Resolve | MemberOf | ConformsTo
        | HtmlChecks | Subsumes | SubsumedBy => fhir::call(ev, func, input, args, env),
    }
}

/// The single item of `input` (`None` if empty); an error for several items.
pub(crate) fn single<'c, 'a>(
    input: &'c Collection<'a>,
    func: Func,
) -> EvalResult<Option<&'c Item<'a>>> {
    match input.as_slice() {
        [] => Ok(None),
        [item] => Ok(Some(item)),
        items => Err(EvalError::NotSingleton(
            format!("{}()", func.name()),
            items.len(),
        )),
    }
}

/// Evaluates argument `i` in the caller's context and returns its single item.
pub(crate) fn arg<'a>(
    ev: &mut Evaluator<'_, 'a>,
    args: Args,
    i: usize,
    env: &Env<'_, 'a>,
    func: Func,
) -> EvalResult<Option<Item<'a>>> {
    let Some(e) = args.get(i) else {
        return Ok(None);
    };
    let c = ev.eval(e, env)?;
    Ok(single(&c, func)?.cloned())
}

pub(crate) fn arg_string<'a>(
    ev: &mut Evaluator<'_, 'a>,
    args: Args,
    i: usize,
    env: &Env<'_, 'a>,
    func: Func,
) -> EvalResult<Option<String>> {
    match arg(ev, args, i, env, func)? {
        None => Ok(None),
        Some(item) => match item.as_str() {
            Some(s) => Ok(Some(s.to_string())),
            None => Err(EvalError::Type(format!(
                "{}() expects a string argument",
                func.name()
            ))),
        },
    }
}

pub(crate) fn arg_integer<'a>(
    ev: &mut Evaluator<'_, 'a>,
    args: Args,
    i: usize,
    env: &Env<'_, 'a>,
    func: Func,
) -> EvalResult<Option<i64>> {
    match arg(ev, args, i, env, func)?.and_then(|i| i.system()) {
        None => Ok(None),
        Some(Item::Integer(n)) => Ok(Some(n)),
        Some(_) => Err(EvalError::Type(format!(
            "{}() expects an integer argument",
            func.name()
        ))),
    }
}
