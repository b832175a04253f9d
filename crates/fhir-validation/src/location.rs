//! Locations in FHIRPath form (`Patient.name[0].given[1]`,
//! `Observation.value.ofType(Quantity)`), kept as a chain of steps on the stack and
//! rendered to text only when an issue is reported.

use std::fmt;

#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    /// The start: a resource type, or a location given as text.
    Root(&'a str),
    Name(&'a str),
    Index(usize),
    /// A choice element with its type: `value.ofType(Quantity)`.
    OfType(&'a str, &'a str),
}

/// One step and the location it continues.
#[derive(Debug, Clone, Copy)]
pub struct Loc<'a> {
    pub parent: Option<&'a Loc<'a>>,
    pub step: Step<'a>,
}

impl<'a> Loc<'a> {
    pub fn root(text: &'a str) -> Loc<'a> {
        Loc {
            parent: None,
            step: Step::Root(text),
        }
    }

    pub fn then(&'a self, step: Step<'a>) -> Loc<'a> {
        Loc {
            parent: Some(self),
            step,
        }
    }
}

impl fmt::Display for Loc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Iterative: locations can be thousands of steps deep.
        let mut steps = Vec::new();
        let mut at = Some(self);
        while let Some(l) = at {
            steps.push(l.step);
            at = l.parent;
        }
        for (i, s) in steps.iter().rev().enumerate() {
            match s {
                Step::Root(t) => f.write_str(t)?,
                Step::Name(n) if i == 0 => f.write_str(n)?,
                Step::Name(n) => write!(f, ".{n}")?,
                Step::Index(x) => write!(f, "[{x}]")?,
                Step::OfType(n, t) => write!(f, ".{n}.ofType({t})")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_fhirpath() {
        let root = Loc::root("Observation");
        let v = root.then(Step::OfType("value", "Quantity"));
        let c = root.then(Step::Name("component"));
        let c0 = c.then(Step::Index(0));
        assert_eq!(v.to_string(), "Observation.value.ofType(Quantity)");
        assert_eq!(
            c0.then(Step::Name("code")).to_string(),
            "Observation.component[0].code"
        );
    }
}
