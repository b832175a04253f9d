//! FHIRPath Patch (fhirpatch.html): a Parameters resource whose `operation` parameters
//! add, insert, delete, replace and move elements that FHIRPath expressions find.
//!
//! Written here because no crate applies FHIRPath Patch to JSON: it needs this crate's
//! evaluator to find the elements and the definitions to name and type what it writes
//! (`deceased` + `valueDateTime` becomes `deceasedDateTime`). [`FhirPathPatch::parse`]
//! reads and checks the Parameters (a [`PatchError::Malformed`] is the client's syntax
//! error); [`FhirPathPatch::apply`] applies the operations in order to a resource (a
//! [`PatchError::Failed`] names the operation that cannot be applied). The caller keeps
//! the original when applying fails: a half-patched value is to be dropped.
//!
//! ```
//! use serde_json::json;
//! let patch = json!({"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
//!     {"name": "type", "valueCode": "replace"},
//!     {"name": "path", "valueString": "Patient.birthDate"},
//!     {"name": "value", "valueDate": "1930-01-01"}]}]});
//! let patch = fhirpath::FhirPathPatch::parse(&patch).unwrap();
//! let mut patient = json!({"resourceType": "Patient", "birthDate": "1920-01-01"});
//! patch.apply(fhir_model::Definitions::r4(), &mut patient).unwrap();
//! assert_eq!(patient["birthDate"], "1930-01-01");
//! ```

mod apply;
mod locate;

use serde_json::Value;

use crate::Expression;

/// A parsed FHIRPath Patch: its operations in order.
#[derive(Debug, Clone)]
pub struct FhirPathPatch {
    operations: Vec<Operation>,
}

/// Why a patch is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The Parameters is not a well-formed FHIRPath Patch (`at`: where in it).
    #[error("{message}")]
    Malformed { message: String, at: String },
    /// Operation `index` (0-based) cannot be applied to this resource.
    #[error("operation {index} ({kind} at '{path}'): {message}")]
    Failed {
        index: usize,
        kind: &'static str,
        path: String,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Add,
    Insert,
    Delete,
    Replace,
    Move,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Add => "add",
            Kind::Insert => "insert",
            Kind::Delete => "delete",
            Kind::Replace => "replace",
            Kind::Move => "move",
        }
    }
}

#[derive(Debug, Clone)]
struct Operation {
    kind: Kind,
    path_text: String,
    path: Expression,
    /// For insert and move: the element holding the list and the list's name.
    list: Option<(Expression, String)>,
    name: Option<String>,
    value: Option<PatchValue>,
    index: Option<usize>,
    source: Option<usize>,
    destination: Option<usize>,
}

/// A value to write.
#[derive(Debug, Clone)]
enum PatchValue {
    /// `value[x]`: the type suffix (`DateTime`), the JSON value, and the primitive's
    /// `_value[x]` (id and extensions).
    Typed {
        suffix: String,
        json: Value,
        ext: Option<Value>,
    },
    /// `part`s naming the children of an element without a type of its own (a
    /// backbone element such as `Patient.contact`), or of a data type.
    Parts(Vec<(String, PatchValue)>),
    /// A resource (`contained`).
    Resource(Value),
}

impl FhirPathPatch {
    /// Reads a FHIRPath Patch from a Parameters resource.
    pub fn parse(parameters: &Value) -> Result<FhirPathPatch, PatchError> {
        if parameters.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
            return Err(malformed(
                "a FHIRPath Patch is a Parameters resource",
                "resourceType",
            ));
        }
        let params = parameters.get("parameter").and_then(Value::as_array);
        let operations = params
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, p)| operation(p, &format!("Parameters.parameter[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        if operations.is_empty() {
            return Err(malformed(
                "a FHIRPath Patch needs at least one 'operation' parameter",
                "Parameters.parameter",
            ));
        }
        Ok(FhirPathPatch { operations })
    }

    /// Applies the operations in order. On error `resource` may be half-patched.
    pub fn apply(
        &self,
        defs: &fhir_model::Definitions,
        resource: &mut Value,
    ) -> Result<(), PatchError> {
        for (index, op) in self.operations.iter().enumerate() {
            apply::operation(defs, op, resource).map_err(|message| PatchError::Failed {
                index,
                kind: op.kind.name(),
                path: op.path_text.clone(),
                message,
            })?;
        }
        Ok(())
    }
}

fn malformed(message: impl Into<String>, at: impl Into<String>) -> PatchError {
    PatchError::Malformed {
        message: message.into(),
        at: at.into(),
    }
}

/// One `operation` parameter and its parts.
fn operation(p: &Value, at: &str) -> Result<Operation, PatchError> {
    if p.get("name").and_then(Value::as_str) != Some("operation") {
        return Err(malformed(
            "a FHIRPath Patch has only parameters named 'operation'",
            format!("{at}.name"),
        ));
    }
    let parts = p.get("part").and_then(Value::as_array);
    let mut found = Parts::default();
    for (j, part) in parts.into_iter().flatten().enumerate() {
        found.read(part, &format!("{at}.part[{j}]"))?;
    }
    let kind = match found.kind.as_deref() {
        Some("add") => Kind::Add,
        Some("insert") => Kind::Insert,
        Some("delete") => Kind::Delete,
        Some("replace") => Kind::Replace,
        Some("move") => Kind::Move,
        Some(other) => {
            return Err(malformed(
                format!("'{other}' is not a patch operation (add, insert, delete, replace, move)"),
                format!("{at}.part"),
            ))
        }
        None => return Err(malformed("the operation has no 'type' part", at)),
    };
    found.check(kind, at)?;
    let path_text = found.path.unwrap_or_default();
    let path = crate::compile(&path_text)
        .map_err(|e| malformed(format!("the path '{path_text}' is not FHIRPath: {e}"), at))?;
    let list = match kind {
        Kind::Insert | Kind::Move => Some(list_of(&path_text, at)?),
        _ => None,
    };
    Ok(Operation {
        kind,
        path_text,
        path,
        list,
        name: found.name,
        value: found.value,
        index: found.index,
        source: found.source,
        destination: found.destination,
    })
}

/// The parts of one operation as read.
#[derive(Default)]
struct Parts {
    kind: Option<String>,
    path: Option<String>,
    name: Option<String>,
    value: Option<PatchValue>,
    index: Option<usize>,
    source: Option<usize>,
    destination: Option<usize>,
}

impl Parts {
    fn read(&mut self, part: &Value, at: &str) -> Result<(), PatchError> {
        let name = part.get("name").and_then(Value::as_str).unwrap_or("");
        let text = |key: &str| {
            part.get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| malformed(format!("the '{name}' part needs a {key}"), at))
        };
        let index = || {
            part.get("valueInteger")
                .and_then(Value::as_u64)
                .map(|n| n as usize)
                .ok_or_else(|| {
                    malformed(
                        format!("the '{name}' part needs a non-negative valueInteger"),
                        at,
                    )
                })
        };
        match name {
            "type" => self.kind = Some(text("valueCode")?),
            "path" => self.path = Some(text("valueString")?),
            "name" => self.name = Some(text("valueString")?),
            "value" => self.value = Some(patch_value(part, at)?),
            "index" => self.index = Some(index()?),
            "source" => self.source = Some(index()?),
            "destination" => self.destination = Some(index()?),
            other => {
                return Err(malformed(
                    format!("'{other}' is not a part of a patch operation (type, path, name, value, index, source, destination)"),
                    at,
                ))
            }
        }
        Ok(())
    }

    /// The parts an operation of `kind` needs are there.
    fn check(&self, kind: Kind, at: &str) -> Result<(), PatchError> {
        let needs: &[(&str, bool)] = match kind {
            Kind::Add => &[
                ("name", self.name.is_some()),
                ("value", self.value.is_some()),
            ],
            Kind::Insert => &[
                ("value", self.value.is_some()),
                ("index", self.index.is_some()),
            ],
            Kind::Delete => &[],
            Kind::Replace => &[("value", self.value.is_some())],
            Kind::Move => &[
                ("source", self.source.is_some()),
                ("destination", self.destination.is_some()),
            ],
        };
        let missing = std::iter::once(("path", self.path.is_some()))
            .chain(needs.iter().copied())
            .find(|(_, present)| !present);
        match missing {
            Some((part, _)) => Err(malformed(
                format!("a '{}' operation needs a '{part}' part", kind.name()),
                at,
            )),
            None => Ok(()),
        }
    }
}

/// The value of a `value` part (or of a part nested in it).
fn patch_value(part: &Value, at: &str) -> Result<PatchValue, PatchError> {
    if let Some(r) = part.get("resource") {
        return Ok(PatchValue::Resource(r.clone()));
    }
    if let Some(parts) = part.get("part").and_then(Value::as_array) {
        let mut children = Vec::with_capacity(parts.len());
        for (k, p) in parts.iter().enumerate() {
            let here = format!("{at}.part[{k}]");
            let Some(name) = p.get("name").and_then(Value::as_str) else {
                return Err(malformed("a value part needs a name", here));
            };
            children.push((name.to_string(), patch_value(p, &here)?));
        }
        return Ok(PatchValue::Parts(children));
    }
    let typed = part.as_object().and_then(|o| {
        o.iter()
            .find(|(k, _)| k.len() > 5 && k.starts_with("value"))
    });
    let Some((key, json)) = typed else {
        return Err(malformed(
            "a value part needs a value[x], a resource or parts",
            at,
        ));
    };
    Ok(PatchValue::Typed {
        suffix: key["value".len()..].to_string(),
        json: json.clone(),
        ext: part.get(format!("_{key}")).cloned(),
    })
}

/// For insert and move: `Patient.name[0].given` → (`Patient.name[0]`, `given`), the
/// element holding the list and the list's name (the list may be empty).
fn list_of(path: &str, at: &str) -> Result<(Expression, String), PatchError> {
    let (mut depth, mut quoted, mut split) = (0i32, false, None);
    for (i, c) in path.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' | '[' if !quoted => depth += 1,
            ')' | ']' if !quoted => depth -= 1,
            '.' if !quoted && depth == 0 => split = Some(i),
            _ => {}
        }
    }
    let refused = || {
        malformed(
            format!("'{path}' does not name a list: insert and move need a path ending in an element name (Patient.identifier)"),
            at,
        )
    };
    let i = split.ok_or_else(refused)?;
    let name = &path[i + 1..];
    let is_name = name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !is_name {
        return Err(refused());
    }
    let holder = crate::compile(&path[..i])
        .map_err(|e| malformed(format!("the path '{path}' is not FHIRPath: {e}"), at))?;
    Ok((holder, name.to_string()))
}
