//! `ValueSet.compose.include.filter` over a code system known here (valueset.html):
//! `is-a`, `descendent-of`, `is-not-a`, `generalizes`, `=`, `in`, `not-in`, `regex` on
//! the concept (`concept` or `code`), and `=`, `in`, `not-in`, `regex`, `exists` on a
//! concept property.

use std::collections::HashSet;

use super::{CodeSystemDef, Concept, ExpansionError, ValueSetFilter};

/// The codes of `cs` that `f` keeps.
pub(super) fn apply<'c>(
    cs: &'c CodeSystemDef,
    f: &ValueSetFilter,
) -> Result<HashSet<&'c str>, ExpansionError> {
    let all = cs.all_concepts();
    let value = f.value.as_str();
    let listed: HashSet<&str> = value.split(',').map(str::trim).collect();
    let is_a = || -> HashSet<&'c str> {
        cs.descendants_and_self(value)
            .into_iter()
            .map(|(c, _)| c)
            .collect()
    };
    let codes = |keep: &dyn Fn(&Concept) -> bool| -> HashSet<&'c str> {
        all.iter()
            .filter(|c| keep(c))
            .map(|c| c.code.as_str())
            .collect()
    };
    let concept = matches!(f.property.as_str(), "concept" | "code");
    // A property this code system declares under its own code for a standard one is
    // held under the standard code.
    let property = cs
        .aliases
        .get(&f.property)
        .map_or(f.property.as_str(), String::as_str);
    Ok(match (concept, f.op.as_str()) {
        (true, "is-a") => is_a(),
        (true, "descendent-of") => {
            let mut d = is_a();
            d.remove(value);
            d
        }
        (true, "is-not-a") => {
            let below = is_a();
            codes(&|c| !below.contains(c.code.as_str()))
        }
        (true, "generalizes") => cs.ancestors_and_self(value).into_iter().collect(),
        (true, "=") => codes(&|c| c.code == value),
        (true, "in") => codes(&|c| listed.contains(c.code.as_str())),
        (true, "not-in") => codes(&|c| !listed.contains(c.code.as_str())),
        (true, "regex") => {
            let re = full_match(f)?;
            codes(&|c| re.is_match(&c.code))
        }
        (false, "=") => codes(&|c| c.property(property).any(|v| v == value)),
        (false, "in") => codes(&|c| c.property(property).any(|v| listed.contains(v))),
        (false, "not-in") => codes(&|c| !c.property(property).any(|v| listed.contains(v))),
        (false, "regex") => {
            let re = full_match(f)?;
            codes(&|c| c.property(property).any(|v| re.is_match(v)))
        }
        (false, "exists") => {
            let wanted = value == "true";
            codes(&|c| c.property(property).next().is_some() == wanted)
        }
        _ => return Err(unsupported(f)),
    })
}

/// The filter's value as a regular expression matching whole values.
fn full_match(f: &ValueSetFilter) -> Result<regex::Regex, ExpansionError> {
    regex::Regex::new(&format!("^(?:{})$", f.value)).map_err(|_| unsupported(f))
}

fn unsupported(f: &ValueSetFilter) -> ExpansionError {
    ExpansionError::UnsupportedFilter(format!("{} {} {}", f.property, f.op, f.value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system() -> CodeSystemDef {
        serde_json::from_value(serde_json::json!({
            "url": "http://example.org/cs", "content": "complete",
            "concept": [
                {"code": "animal", "property": [{"code": "notSelectable", "valueBoolean": true}],
                 "concept": [{"code": "dog", "concept": [{"code": "puppy"}]}, {"code": "cat"}]},
                {"code": "plant", "property": [{"code": "child", "valueCode": "tree"}]},
                {"code": "tree", "property": [{"code": "status", "valueCode": "retired"}]}
            ]
        }))
        .expect("code system")
    }

    fn keep(property: &str, op: &str, value: &str) -> Vec<String> {
        let f = ValueSetFilter {
            property: property.into(),
            op: op.into(),
            value: value.into(),
        };
        let cs = system();
        let mut out: Vec<String> = apply(&cs, &f)
            .expect("supported")
            .into_iter()
            .map(str::to_string)
            .collect();
        out.sort();
        out
    }

    #[test]
    fn standard_properties_declared_under_another_code_are_found_by_either() {
        let cs: CodeSystemDef = serde_json::from_value(serde_json::json!({
            "url": "http://example.org/reprop", "content": "complete",
            "property": [{"code": "not-selectable", "type": "boolean",
                "uri": "http://hl7.org/fhir/concept-properties#notSelectable"}],
            "concept": [
                {"code": "s", "property": [{"code": "not-selectable", "valueBoolean": false}]},
                {"code": "ns", "property": [{"code": "not-selectable", "valueBoolean": true}]}]
        }))
        .expect("code system");
        assert!(cs.find("ns").unwrap().not_selectable());
        assert!(!cs.find("s").unwrap().not_selectable());
        for property in ["notSelectable", "not-selectable"] {
            let f = ValueSetFilter {
                property: property.into(),
                op: "=".into(),
                value: "true".into(),
            };
            let kept: Vec<&str> = apply(&cs, &f).unwrap().into_iter().collect();
            assert_eq!(kept, ["ns"], "{property}");
        }
    }

    #[test]
    fn filters_follow_the_hierarchy_and_properties() {
        assert_eq!(keep("concept", "is-a", "dog"), ["dog", "puppy"]);
        assert_eq!(
            keep("concept", "descendent-of", "animal"),
            ["cat", "dog", "puppy"]
        );
        assert_eq!(keep("concept", "is-not-a", "animal"), ["plant", "tree"]);
        assert_eq!(
            keep("concept", "is-a", "plant"),
            ["plant", "tree"],
            "child property"
        );
        assert_eq!(
            keep("concept", "generalizes", "puppy"),
            ["animal", "dog", "puppy"]
        );
        assert_eq!(keep("concept", "in", "cat,tree"), ["cat", "tree"]);
        assert_eq!(keep("code", "regex", "p.*"), ["plant", "puppy"]);
        assert_eq!(keep("notSelectable", "=", "true"), ["animal"]);
        assert_eq!(keep("status", "exists", "true"), ["tree"]);
        assert_eq!(keep("status", "not-in", "retired").len(), 5);
    }
}
