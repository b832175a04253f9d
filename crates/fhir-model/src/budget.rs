//! The time budget of the request running on this thread: a deadline, and a flag the
//! server raises when the client has gone. Long work (FHIRPath evaluation, validation,
//! database statements) checks it, so that no single request can hold a CPU or a
//! database connection for longer than the server allows, or for a client that left.
//!
//! The server runs each request's blocking work inside [`Budget::run`]; code anywhere
//! below asks [`expired`] (cheap: two thread-local reads and, when a deadline is set,
//! one clock read). Work that finds the budget spent stops with an error of its own
//! kind, which the server answers as 503.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A deadline and a cancellation flag.
#[derive(Debug, Clone, Default)]
pub struct Budget {
    pub deadline: Option<Instant>,
    cancelled: Arc<AtomicBool>,
}

thread_local! {
    static CURRENT: RefCell<Option<Budget>> = const { RefCell::new(None) };
}

impl Budget {
    /// A budget of `limit` from now (`None`: no deadline, only cancellation).
    pub fn new(limit: Option<Duration>) -> Budget {
        Budget {
            deadline: limit.map(|l| Instant::now() + l),
            cancelled: Arc::default(),
        }
    }

    /// Marks the work as abandoned (its client has gone): it stops at its next check.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    pub fn is_spent(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Runs `f` on this thread under this budget; an enclosing budget's deadline still
    /// applies when it is earlier. The previous budget is restored afterwards, also
    /// when `f` panics.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        struct Restore(Option<Budget>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0.take();
                CURRENT.with(|c| *c.borrow_mut() = previous);
            }
        }
        let previous = CURRENT.with(|c| c.borrow().clone());
        let mut effective = self.clone();
        if let Some(p) = previous.as_ref().and_then(|p| p.deadline) {
            effective.deadline = Some(effective.deadline.map_or(p, |d| d.min(p)));
        }
        CURRENT.with(|c| *c.borrow_mut() = Some(effective));
        let _restore = Restore(previous);
        f()
    }
}

/// The deadline of this thread's request, if any.
pub fn deadline() -> Option<Instant> {
    CURRENT.with(|c| c.borrow().as_ref().and_then(|b| b.deadline))
}

/// Time left before the deadline (`None`: no deadline; zero: spent).
pub fn remaining() -> Option<Duration> {
    deadline().map(|d| d.saturating_duration_since(Instant::now()))
}

/// Whether this thread's request has run out of time or was abandoned.
pub fn expired() -> bool {
    CURRENT.with(|c| c.borrow().as_ref().is_some_and(Budget::is_spent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_budgets_keep_the_earlier_deadline_and_restore() {
        assert!(deadline().is_none());
        let outer = Budget::new(Some(Duration::from_secs(1)));
        let inner = Budget::new(Some(Duration::from_secs(60)));
        outer.run(|| {
            inner.run(|| assert_eq!(deadline(), outer.deadline));
            assert!(!expired());
        });
        assert!(deadline().is_none());
        Budget::new(Some(Duration::ZERO)).run(|| assert!(expired()));
    }

    #[test]
    fn a_cancelled_budget_is_spent() {
        let b = Budget::new(None);
        b.run(|| assert!(!expired()));
        b.cancel();
        b.run(|| assert!(expired()));
    }
}
