//! SMART on FHIR scopes (v1 and v2) and what they allow.
//!
//! `patient/Observation.rs`, `user/*.cruds`, `system/Patient.read` (v1),
//! `patient/Observation.rs?category=laboratory` (v2 with a search constraint). Scopes
//! that are not about resources (`openid`, `launch`, `offline_access`…) are ignored.

use std::fmt;

/// The context a scope applies in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeContext {
    /// Confined to the patient compartment of the token's `patient`.
    Patient,
    User,
    System,
}

/// A FHIR interaction class, as SMART v2 names them (`c r u d s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interaction {
    Create,
    Read,
    Update,
    Delete,
    Search,
}

impl Interaction {
    fn bit(self) -> u8 {
        match self {
            Interaction::Create => 1,
            Interaction::Read => 2,
            Interaction::Update => 4,
            Interaction::Delete => 8,
            Interaction::Search => 16,
        }
    }

    pub fn letter(self) -> char {
        match self {
            Interaction::Create => 'c',
            Interaction::Read => 'r',
            Interaction::Update => 'u',
            Interaction::Delete => 'd',
            Interaction::Search => 's',
        }
    }
}

/// One resource scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub context: ScopeContext,
    /// `None` for `*`.
    pub resource_type: Option<String>,
    perms: u8,
    /// Search parameters every allowed resource must match (v2 `?…`).
    pub constraint: Vec<(String, String)>,
    text: String,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Scope {
    /// Parses one scope; `None` if it is not a resource scope or is malformed.
    pub fn parse(text: &str) -> Option<Scope> {
        let (context, rest) = text.split_once('/')?;
        let context = match context {
            "patient" => ScopeContext::Patient,
            "user" => ScopeContext::User,
            "system" => ScopeContext::System,
            _ => return None,
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (rtype, perms) = rest.split_once('.')?;
        let resource_type = match rtype {
            "*" => None,
            t if !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphabetic()) => Some(t.to_string()),
            _ => return None,
        };
        let perms = parse_perms(perms)?;
        let constraint = query
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Some(Scope {
            context,
            resource_type,
            perms,
            constraint,
            text: text.to_string(),
        })
    }

    pub fn allows(&self, interaction: Interaction) -> bool {
        self.perms & interaction.bit() != 0
    }

    /// Whether the scope covers `resource_type`. AuditEvents are only for scopes that
    /// name them: a wildcard does not make a client an auditor.
    pub fn covers(&self, resource_type: &str) -> bool {
        match &self.resource_type {
            Some(t) => t == resource_type,
            None => resource_type != "AuditEvent",
        }
    }
}

/// v1 `read`/`write`/`*`, or v2 letters in the order `cruds`.
fn parse_perms(p: &str) -> Option<u8> {
    match p {
        "read" => return Some(2 | 16),
        "write" => return Some(1 | 4 | 8),
        "*" => return Some(31),
        _ => {}
    }
    let order = "cruds";
    let mut last = None;
    let mut bits = 0;
    for ch in p.chars() {
        let pos = order.find(ch)?;
        if last.is_some_and(|l| pos <= l) {
            return None;
        }
        last = Some(pos);
        bits |= 1 << pos;
    }
    (bits != 0).then_some(bits)
}

/// A granted set of scopes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet {
    pub scopes: Vec<Scope>,
    /// Scopes that are not about resources (kept to echo them back).
    pub other: Vec<String>,
}

impl ScopeSet {
    pub fn parse(text: &str) -> ScopeSet {
        let mut set = ScopeSet::default();
        for s in text.split_ascii_whitespace() {
            match Scope::parse(s) {
                Some(scope) => set.scopes.push(scope),
                None => set.other.push(s.to_string()),
            }
        }
        set
    }

    /// What `self` (a client's registered scopes) allows of `requested`: a requested
    /// scope one registered scope covers is granted as asked; otherwise what the
    /// registered scopes allow of it, narrowed (`system/*.cruds` asked, `system/*.rs`
    /// registered: `system/*.rs` granted), as SMART lets a server grant less than asked.
    pub fn grant(&self, requested: &ScopeSet) -> ScopeSet {
        let mut scopes: Vec<Scope> = Vec::new();
        for r in &requested.scopes {
            let granted: Vec<Scope> = if self.scopes.iter().any(|g| covers_scope(g, r)) {
                vec![r.clone()]
            } else {
                self.scopes.iter().filter_map(|g| narrowed(g, r)).collect()
            };
            for g in granted {
                if !scopes.iter().any(|s| s.text == g.text) {
                    scopes.push(g);
                }
            }
        }
        ScopeSet {
            scopes,
            other: Vec::new(),
        }
    }

    pub fn to_text(&self) -> String {
        self.scopes
            .iter()
            .map(|s| s.text.as_str())
            .chain(self.other.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The rules under which `interaction` on `resource_type` is allowed; empty: denied.
    /// `patient` is the token's patient (patient scopes grant nothing without one).
    pub fn rules(
        &self,
        interaction: Interaction,
        resource_type: &str,
        patient: Option<&str>,
    ) -> Vec<Rule> {
        let mut rules: Vec<Rule> = Vec::new();
        for s in &self.scopes {
            if !s.allows(interaction) || !s.covers(resource_type) {
                continue;
            }
            let confine = match s.context {
                ScopeContext::Patient => match patient {
                    Some(p) => Some(p.to_string()),
                    None => continue,
                },
                _ => None,
            };
            rules.push(Rule {
                patient: confine,
                constraint: s.constraint.clone(),
            });
        }
        simplify(rules)
    }
}

/// What registered scope `granted` allows of `requested`: the shared permissions, on
/// the narrower type, under both constraints (`None`: nothing).
fn narrowed(granted: &Scope, requested: &Scope) -> Option<Scope> {
    if granted.context != requested.context {
        return None;
    }
    let resource_type = match (&granted.resource_type, &requested.resource_type) {
        (None, Some(t)) if t == "AuditEvent" => return None,
        (None, r) => r.clone(),
        (Some(g), None) => Some(g.clone()),
        (Some(g), Some(r)) if g == r => Some(r.clone()),
        _ => return None,
    };
    let perms = granted.perms & requested.perms;
    if perms == 0 {
        return None;
    }
    let mut constraint = requested.constraint.clone();
    for c in &granted.constraint {
        if !constraint.contains(c) {
            constraint.push(c.clone());
        }
    }
    let context = match requested.context {
        ScopeContext::Patient => "patient",
        ScopeContext::User => "user",
        ScopeContext::System => "system",
    };
    let letters: String = "cruds"
        .chars()
        .enumerate()
        .filter(|(i, _)| perms & (1 << i) != 0)
        .map(|(_, c)| c)
        .collect();
    let mut text = format!(
        "{context}/{}.{letters}",
        resource_type.as_deref().unwrap_or("*")
    );
    if !constraint.is_empty() {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(constraint.iter())
            .finish();
        text = format!("{text}?{query}");
    }
    Some(Scope {
        context: requested.context,
        resource_type,
        perms,
        constraint,
        text,
    })
}

fn covers_scope(granted: &Scope, requested: &Scope) -> bool {
    let type_ok = match (&granted.resource_type, &requested.resource_type) {
        (None, Some(t)) => t != "AuditEvent",
        (None, None) => true,
        (Some(g), Some(r)) => g == r,
        (Some(_), None) => false,
    };
    granted.context == requested.context
        && type_ok
        && requested.perms & !granted.perms == 0
        && granted
            .constraint
            .iter()
            .all(|c| requested.constraint.contains(c))
}

/// One way an interaction is allowed: confined to a patient's compartment and/or to
/// resources matching search parameters. No confinement and no constraint: anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub patient: Option<String>,
    pub constraint: Vec<(String, String)>,
}

impl Rule {
    pub fn unrestricted() -> Rule {
        Rule {
            patient: None,
            constraint: Vec::new(),
        }
    }

    pub fn is_unrestricted(&self) -> bool {
        self.patient.is_none() && self.constraint.is_empty()
    }

    /// Whether every resource this rule allows is also allowed by `other`.
    fn within(&self, other: &Rule) -> bool {
        (other.patient.is_none() || other.patient == self.patient)
            && other.constraint.iter().all(|c| self.constraint.contains(c))
    }
}

/// Drops rules that another rule already includes (an unrestricted rule wins).
fn simplify(rules: Vec<Rule>) -> Vec<Rule> {
    let mut kept: Vec<Rule> = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        let dominated = rules
            .iter()
            .enumerate()
            .any(|(j, o)| j != i && r.within(o) && (!o.within(r) || j < i));
        if !dominated {
            kept.push(r.clone());
        }
    }
    kept
}

/// The name of an interaction class, for messages.
pub fn interaction_name(i: Interaction) -> &'static str {
    match i {
        Interaction::Create => "create",
        Interaction::Read => "read",
        Interaction::Update => "update",
        Interaction::Delete => "delete",
        Interaction::Search => "search",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(scopes: &str, i: Interaction, t: &str, p: Option<&str>) -> Vec<Rule> {
        ScopeSet::parse(scopes).rules(i, t, p)
    }

    #[test]
    fn v2_letters_and_v1_words() {
        let s = Scope::parse("patient/Observation.rs").unwrap();
        assert!(s.allows(Interaction::Read) && s.allows(Interaction::Search));
        assert!(!s.allows(Interaction::Create));
        let w = Scope::parse("user/*.write").unwrap();
        assert!(w.allows(Interaction::Update) && !w.allows(Interaction::Read));
        assert!(Scope::parse("system/*.cruds")
            .unwrap()
            .allows(Interaction::Delete));
        assert!(
            Scope::parse("system/*.sr").is_none(),
            "letters out of order"
        );
        assert!(Scope::parse("system/*.x").is_none());
        assert!(Scope::parse("openid").is_none());
        assert!(Scope::parse("launch/patient").is_none());
    }

    #[test]
    fn constraints_are_parsed() {
        let s = Scope::parse("patient/Observation.rs?category=laboratory").unwrap();
        assert_eq!(s.constraint, vec![("category".into(), "laboratory".into())]);
    }

    #[test]
    fn patient_scopes_need_a_patient() {
        assert!(rules("patient/*.rs", Interaction::Read, "Observation", None).is_empty());
        let r = rules("patient/*.rs", Interaction::Read, "Observation", Some("p1"));
        assert_eq!(r[0].patient.as_deref(), Some("p1"));
    }

    #[test]
    fn unrestricted_rule_wins() {
        let r = rules(
            "patient/Observation.rs system/Observation.rs",
            Interaction::Search,
            "Observation",
            Some("p1"),
        );
        assert_eq!(r, vec![Rule::unrestricted()]);
        let r = rules(
            "system/Observation.rs?category=lab system/Observation.rs?category=vital",
            Interaction::Search,
            "Observation",
            None,
        );
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn audit_events_need_their_own_scope() {
        assert!(rules("system/*.rs", Interaction::Read, "AuditEvent", None).is_empty());
        assert_eq!(
            rules(
                "system/AuditEvent.rs",
                Interaction::Read,
                "AuditEvent",
                None
            )
            .len(),
            1
        );
    }

    #[test]
    fn grants_are_limited_to_registered_scopes() {
        let registered = ScopeSet::parse("system/*.rs system/Patient.cruds");
        let granted = registered.grant(&ScopeSet::parse(
            "system/Observation.rs system/Observation.c system/Patient.u system/*.cruds",
        ));
        // Observation.c is not allowed at all; *.cruds is narrowed to what is registered.
        assert_eq!(
            granted.to_text(),
            "system/Observation.rs system/Patient.u system/*.rs system/Patient.cruds"
        );
        let granted = registered.grant(&ScopeSet::parse("system/Observation.read"));
        assert_eq!(
            granted.to_text(),
            "system/Observation.read",
            "v1 text kept when covered"
        );
        let registered = ScopeSet::parse("patient/Observation.rs?category=laboratory");
        let granted = registered.grant(&ScopeSet::parse("patient/Observation.cruds"));
        assert_eq!(
            granted.to_text(),
            "patient/Observation.rs?category=laboratory"
        );
    }
}
