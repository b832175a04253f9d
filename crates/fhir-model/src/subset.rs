//! `_summary` and `_elements`: the subsets of a resource a client may ask for
//! (search.html#summary, #elements), decided by the definitions' `isSummary` and
//! cardinality flags. A subset is tagged `SUBSETTED` in `meta.tag`.

use serde_json::{json, Map, Value};

use crate::definitions::Definitions;

/// `_summary` values that shape one resource (`count` concerns searches only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    /// Elements marked `isSummary`, plus mandatory ones.
    True,
    /// `text`, `id`, `meta` and mandatory elements.
    Text,
    /// Everything but `text`.
    Data,
    /// Everything.
    False,
}

impl Summary {
    /// Parses `true|text|data|false`; `None` for anything else (including `count`).
    pub fn parse(text: &str) -> Option<Summary> {
        match text {
            "true" => Some(Summary::True),
            "text" => Some(Summary::Text),
            "data" => Some(Summary::Data),
            "false" => Some(Summary::False),
            _ => None,
        }
    }
}

/// What to keep of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subset {
    Summary(Summary),
    /// `_elements`: these top-level element names (plus mandatory elements).
    Elements(Vec<String>),
}

const ALWAYS: &[&str] = &["resourceType", "id", "meta"];

/// The tag a server puts on a resource it returns incompletely.
pub fn subsetted_tag() -> Value {
    json!({
        "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
        "code": "SUBSETTED",
        "display": "Resource encoded in summary mode"
    })
}

impl Definitions {
    /// The subset of `resource` asked for; the full resource for `_summary=false`.
    pub fn subset(&self, resource: &Value, subset: &Subset) -> Value {
        if *subset == Subset::Summary(Summary::False) {
            return resource.clone();
        }
        let Some(obj) = resource.as_object() else {
            return resource.clone();
        };
        let rt = obj
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or("");
        let Some(root) = self.root(rt) else {
            return resource.clone();
        };
        let mut out = Map::new();
        for (key, value) in obj {
            let name = key.strip_prefix('_').unwrap_or(key);
            let keep = if ALWAYS.contains(&name) {
                true
            } else {
                match self.child(root, name) {
                    None => false,
                    Some(step) => {
                        let e = step.element();
                        match subset {
                            Subset::Summary(Summary::True) => e.is_summary || e.min > 0,
                            Subset::Summary(Summary::Text) => name == "text" || e.min > 0,
                            Subset::Summary(Summary::Data) => name != "text",
                            Subset::Summary(Summary::False) => true,
                            Subset::Elements(names) => {
                                e.min > 0 || names.iter().any(|n| n == &e.name || n == name)
                            }
                        }
                    }
                }
            };
            if keep {
                out.insert(key.clone(), value.clone());
            }
        }
        tag_subsetted(&mut out);
        Value::Object(out)
    }
}

fn tag_subsetted(resource: &mut Map<String, Value>) {
    let meta = resource
        .entry("meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = meta {
        let tags = meta
            .entry("tag")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(tags) = tags {
            tags.push(subsetted_tag());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patient() -> Value {
        json!({"resourceType": "Patient", "id": "p", "meta": {"versionId": "1"},
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
            "name": [{"family": "F"}], "birthDate": "1970-01-01", "_birthDate": {"id": "b"},
            "contact": [{"name": {"family": "C"}}], "photo": [{"title": "t"}]})
    }

    #[test]
    fn summary_keeps_summary_elements_and_tags_the_subset() {
        let defs = Definitions::r4();
        let s = defs.subset(&patient(), &Subset::Summary(Summary::True));
        let keys: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "resourceType",
                "id",
                "meta",
                "name",
                "birthDate",
                "_birthDate"
            ]
        );
        assert_eq!(s["meta"]["tag"][0]["code"], "SUBSETTED");
        assert_eq!(s["meta"]["versionId"], "1");
    }

    #[test]
    fn text_data_and_elements() {
        let defs = Definitions::r4();
        let text = defs.subset(&patient(), &Subset::Summary(Summary::Text));
        assert!(text.get("text").is_some() && text.get("name").is_none());
        let data = defs.subset(&patient(), &Subset::Summary(Summary::Data));
        assert!(data.get("text").is_none() && data.get("contact").is_some());
        let only = defs.subset(&patient(), &Subset::Elements(vec!["photo".into()]));
        let keys: Vec<&str> = only
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["resourceType", "id", "meta", "photo"]);
        assert_eq!(
            defs.subset(&patient(), &Subset::Summary(Summary::False)),
            patient()
        );
        let obs = json!({"resourceType": "Observation", "status": "final", "code": {"text": "c"}, "valueQuantity": {"value": 1}, "note": [{"text": "n"}]});
        let v = defs.subset(&obs, &Subset::Elements(vec!["value".into()]));
        assert!(v.get("valueQuantity").is_some(), "choice elements by name");
        assert!(
            v.get("status").is_some() && v.get("code").is_some(),
            "mandatory elements stay"
        );
        assert!(v.get("note").is_none());
    }
}
