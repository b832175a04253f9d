//! Expansions a [`super::Terminology`] has computed, kept for the next request: a value
//! set's expansion depends only on the terminology's resources, which do not change
//! once it is built (the packages', or those a server gathered for a generation of its
//! stored terminology). Bounded by the codes held; past the bound, expansions are
//! computed each time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::ExpandedCode;

/// Codes one terminology keeps in its memo at most (about 100 bytes each).
const MAX_CODES: usize = 500_000;

#[derive(Default)]
pub(super) struct Memo {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    expansions: HashMap<String, Arc<Vec<ExpandedCode>>>,
    codes: usize,
}

impl Memo {
    pub(super) fn get(&self, url: &str) -> Option<Arc<Vec<ExpandedCode>>> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.expansions.get(url).cloned()
    }

    pub(super) fn keep(&self, url: &str, codes: &Arc<Vec<ExpandedCode>>) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.codes + codes.len() > MAX_CODES {
            return;
        }
        inner.codes += codes.len();
        inner.expansions.insert(url.to_string(), codes.clone());
    }
}

/// A copy starts with nothing memoized (it may be changed before it is used).
impl Clone for Memo {
    fn clone(&self) -> Self {
        Memo::default()
    }
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        write!(f, "Memo({} expansions)", inner.expansions.len())
    }
}
