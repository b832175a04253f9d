//! `CodeSystem/$lookup` (codesystem-operation-lookup): the name and version of the code
//! system, the concept's display, and its properties — `parent` and `child` from the
//! hierarchy (nested concepts and the `parent`/`child` properties) and the concept's
//! own — and its `designation`s, all of them or those named by `property`; the display
//! in `displayLanguage` where the concept has a designation in that language.

use fhir_model::terminology::{CodeSystemDef, Concept, Terminology};
use serde_json::{json, Value};

use crate::{codings, invalid, not_found, param, parameters, Coding, Params, TxError};

/// The code system `url` names, or why not.
pub(crate) fn code_system<'t>(
    t: &'t Terminology,
    url: Option<&str>,
    at: &str,
) -> Result<&'t CodeSystemDef, TxError> {
    let url = url.ok_or_else(|| invalid("the code system is needed (system)", at))?;
    let cs = t
        .code_system(url)
        .ok_or_else(|| not_found(format!("CodeSystem {url} is not known to this server"), at))?;
    // A code system known by its description only (`not-present`, as the core package
    // has LOINC and SNOMED CT) or a supplement has no codes of its own to answer from.
    match cs.content.as_str() {
        "not-present" if cs.concepts.is_empty() => Err(TxError::NotSupported {
            message: format!(
                "CodeSystem {url} is known here without its concepts (content 'not-present'): its codes cannot be looked up or checked on this server"
            ),
            param: at.into(),
        }),
        "supplement" => Err(invalid(
            format!(
                "CodeSystem {url} is a supplement (of {}): ask about the code system it supplements",
                cs.supplements.as_deref().unwrap_or("another code system")
            ),
            at,
        )),
        _ => Ok(cs),
    }
}

/// The concept `code` in `cs`, honouring `caseSensitive`.
pub(crate) fn concept<'c>(cs: &'c CodeSystemDef, code: &str) -> Option<&'c Concept> {
    cs.find(code).or_else(|| {
        (cs.case_sensitive == Some(false))
            .then(|| {
                cs.all_concepts()
                    .into_iter()
                    .find(|c| c.code.eq_ignore_ascii_case(code))
            })
            .flatten()
    })
}

pub fn lookup(t: &Terminology, p: &Params) -> Result<Value, TxError> {
    let (found, from) = codings(p, "system")?;
    let coding: &Coding = &found[0];
    let cs = code_system(
        t,
        coding.system.as_deref(),
        if from == "code" { "system" } else { &from },
    )?;
    let code = coding.code.as_deref().unwrap_or("");
    let c = concept(cs, code).ok_or_else(|| {
        not_found(
            format!("Unknown code '{code}' in the CodeSystem '{}'", cs.url),
            &from,
        )
    })?;
    // `property=*` asks for every property, as no `property` does.
    // A code system's own code for a standard property names the standard one.
    let wanted: Vec<&str> = p
        .texts("property")
        .into_iter()
        .map(|w| cs.aliases.get(w).map_or(w, String::as_str))
        .collect();
    let want = |name: &str| wanted.is_empty() || wanted.contains(&"*") || wanted.contains(&name);
    let mut out = vec![
        param("code", "Code", c.code.clone()),
        param("system", "Uri", cs.url.clone()),
        param(
            "name",
            "String",
            cs.name.clone().unwrap_or_else(|| cs.url.clone()),
        ),
    ];
    if let Some(v) = &cs.version {
        out.push(param("version", "String", v.clone()));
    }
    let localized = p
        .text("displayLanguage")
        .and_then(|l| c.designation_in(l))
        .map(str::to_string);
    out.push(param(
        "display",
        "String",
        localized.unwrap_or_else(|| c.display.clone().unwrap_or_else(|| c.code.clone())),
    ));
    if want("designation") {
        out.extend(c.designations.iter().map(designation));
    }
    let index = cs.children_index();
    if want("parent") {
        let mut parents: Vec<&str> = index
            .iter()
            .filter(|(p, kids)| **p != c.code && kids.contains(&c.code.as_str()))
            .map(|(p, _)| *p)
            .collect();
        parents.sort_unstable();
        parents.dedup();
        out.extend(parents.into_iter().map(|code| property("parent", code)));
    }
    if want("child") {
        let mut kids: Vec<&str> = index.get(c.code.as_str()).cloned().unwrap_or_default();
        kids.dedup();
        out.extend(kids.into_iter().map(|code| property("child", code)));
    }
    if let (true, Some(d)) = (want("definition"), &c.definition) {
        out.push(typed_property("definition", "String", json!(d)));
    }
    // Whether the concept is active is a property every concept has
    // (codesystem-concept-properties), given here unless the concept states it.
    let states_inactive = c.properties.iter().any(|pr| pr.code == "inactive");
    if want("inactive") && !states_inactive {
        out.push(typed_property("inactive", "Boolean", json!(c.inactive())));
    }
    for prop in c
        .properties
        .iter()
        .filter(|pr| pr.code != "parent" && pr.code != "child" && want(&pr.code))
    {
        out.push(typed_property(&prop.code, prop.kind.0, typed_value(prop)));
    }
    Ok(parameters(out))
}

/// A concept property's value as JSON of its type.
pub(crate) fn typed_value(p: &fhir_model::terminology::ConceptProperty) -> Value {
    match p.kind.0 {
        "Boolean" => json!(p.value == "true"),
        "Integer" => p.value.parse::<i64>().map_or(json!(p.value), |i| json!(i)),
        "Decimal" => serde_json::from_str(&p.value).unwrap_or(json!(p.value)),
        "Coding" => json!({"code": p.value}),
        _ => json!(p.value),
    }
}

fn typed_property(code: &str, kind: &str, value: Value) -> Value {
    let mut v = json!({"name": "value"});
    v[format!("value{kind}")] = value;
    json!({"name": "property", "part": [{"name": "code", "valueCode": code}, v]})
}

/// A `designation` output: its `language`, `use` and `value` parts.
fn designation(d: &fhir_model::terminology::Designation) -> Value {
    let mut parts = Vec::new();
    if let Some(l) = &d.language {
        parts.push(json!({"name": "language", "valueCode": l}));
    }
    if let Some(u) = &d.use_ {
        parts.push(json!({"name": "use", "valueCoding": u}));
    }
    parts.push(json!({"name": "value", "valueString": d.value}));
    json!({"name": "designation", "part": parts})
}

fn property(code: &str, value: &str) -> Value {
    json!({"name": "property", "part": [
        {"name": "code", "valueCode": code},
        {"name": "value", "valueCode": value}]})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{params, r4};

    #[test]
    fn gives_designations_and_the_display_in_a_language() {
        let t = crate::expand::tests::hospital();
        let cs = "http://example.org/cs/lang";
        let v = lookup(
            &t,
            &params(&[("system", cs), ("code", "fever"), ("displayLanguage", "fr")]),
        )
        .unwrap();
        assert!(
            v.to_string()
                .contains(r#"{"name":"display","valueString":"Fièvre"}"#),
            "{v}"
        );
        let designations: Vec<&Value> = v["parameter"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["name"] == "designation")
            .collect();
        assert_eq!(designations.len(), 2);
        assert_eq!(
            designations[0]["part"],
            json!([{"name": "language", "valueCode": "de-CH"}, {"name": "value", "valueString": "Fieber"}])
        );
        let only = lookup(
            &t,
            &params(&[("system", cs), ("code", "fever"), ("property", "parent")]),
        )
        .unwrap();
        assert!(!only.to_string().contains("designation"), "{only}");
    }

    fn props(v: &Value, code: &str) -> Vec<String> {
        v["parameter"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["name"] == "property" && p["part"][0]["valueCode"] == code)
            .map(|p| p["part"][1]["valueCode"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn looks_up_display_and_hierarchy() {
        let v = lookup(
            r4(),
            &params(&[
                ("system", "http://hl7.org/fhir/administrative-gender"),
                ("code", "female"),
            ]),
        )
        .unwrap();
        assert_eq!(v["parameter"][2]["valueString"], "AdministrativeGender");
        assert!(v.to_string().contains("\"valueString\":\"Female\""), "{v}");
        let act = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
        let v = lookup(
            r4(),
            &params(&[("system", act), ("code", "_ActEncounterCode")]),
        )
        .unwrap();
        assert!(props(&v, "child").contains(&"AMB".to_string()), "{v}");
        let v = lookup(r4(), &params(&[("system", act), ("code", "AMB")])).unwrap();
        assert_eq!(props(&v, "parent"), vec!["_ActEncounterCode"]);
    }

    #[test]
    fn unknown_systems_and_codes_are_not_found() {
        let e = lookup(r4(), &params(&[("system", "http://x"), ("code", "a")])).unwrap_err();
        assert_eq!(e.param(), "system");
        let e = lookup(
            r4(),
            &params(&[
                ("system", "http://hl7.org/fhir/administrative-gender"),
                ("code", "nope"),
            ]),
        )
        .unwrap_err();
        assert!(matches!(e, TxError::NotFound { .. }));
        assert!(lookup(r4(), &params(&[])).is_err());
    }
}
