//! `CodeSystem/$subsumes`: how code A relates to code B in one code system's hierarchy
//! — `equivalent`, `subsumes` (A is an ancestor of B), `subsumed-by`, `not-subsumed`.

use fhir_model::terminology::Terminology;
use serde_json::Value;

use crate::lookup::{code_system, concept};
use crate::{invalid, not_found, param, parameters, Coding, Params, TxError};

/// One side: `codeX`, or `codingX`.
fn side(p: &Params, which: &str) -> Result<Coding, TxError> {
    if let Some(code) = p.text(&format!("code{which}")) {
        return Ok(Coding {
            system: p.text("system").map(str::to_string),
            code: Some(code.to_string()),
            ..Default::default()
        });
    }
    if let Some(c) = p.json(&format!("coding{which}")) {
        let s = |k: &str| c.get(k).and_then(Value::as_str).map(str::to_string);
        return Ok(Coding {
            system: s("system").or_else(|| p.text("system").map(str::to_string)),
            code: s("code"),
            ..Default::default()
        });
    }
    Err(invalid(
        format!("code{which} (or coding{which}) is needed"),
        &format!("code{which}"),
    ))
}

/// `instance_url` is the code system of an instance-level call.
pub fn subsumes(t: &Terminology, p: &Params, instance_url: Option<&str>) -> Result<Value, TxError> {
    let (a, b) = (side(p, "A")?, side(p, "B")?);
    let url = instance_url.or(a.system.as_deref()).or(b.system.as_deref());
    let cs = code_system(t, url, "system")?;
    for (c, which) in [(&a, "A"), (&b, "B")] {
        if c.system.as_deref().is_some_and(|s| s != cs.url) {
            return Err(invalid(
                format!(
                    "code{which} is in {}, not in {}: both codes must be in one code system",
                    c.label(),
                    cs.url
                ),
                &format!("code{which}"),
            ));
        }
    }
    let known = |c: &Coding, which: &str| {
        let code = c.code.as_deref().unwrap_or("");
        concept(cs, code).map(|k| k.code.clone()).ok_or_else(|| {
            not_found(
                format!("Unknown code '{code}' in the CodeSystem '{}'", cs.url),
                &format!("code{which}"),
            )
        })
    };
    let (ca, cb) = (known(&a, "A")?, known(&b, "B")?);
    let outcome = if ca == cb {
        "equivalent"
    } else if cs.ancestors_and_self(&cb).contains(&ca.as_str()) {
        "subsumes"
    } else if cs.ancestors_and_self(&ca).contains(&cb.as_str()) {
        "subsumed-by"
    } else {
        "not-subsumed"
    };
    Ok(parameters(vec![param("outcome", "Code", outcome)]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{params, r4};

    #[test]
    fn act_code_hierarchy() {
        let act = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
        let out = |a: &str, b: &str| {
            subsumes(
                r4(),
                &params(&[("system", act), ("codeA", a), ("codeB", b)]),
                None,
            )
            .unwrap()["parameter"][0]["valueCode"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(out("_ActEncounterCode", "AMB"), "subsumes");
        assert_eq!(out("AMB", "_ActEncounterCode"), "subsumed-by");
        assert_eq!(out("AMB", "AMB"), "equivalent");
        assert_eq!(out("AMB", "EMER"), "not-subsumed");
        let e = subsumes(
            r4(),
            &params(&[("system", act), ("codeA", "AMB"), ("codeB", "nope")]),
            None,
        )
        .unwrap_err();
        assert_eq!(e.param(), "codeB");
    }
}
