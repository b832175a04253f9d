//! The time budget of the request running on this thread: a deadline, and a flag the
//! server raises when the client has gone. Long work (FHIRPath evaluation, validation,
//! database statements) checks it, so that no single request can hold a CPU or a
//! database connection for longer than the server allows, or for a client that left.
//!
//! The server runs each request's blocking work inside [`Budget::run`]; code anywhere
//! below asks [`expired`] (cheap: two thread-local reads and, when a deadline is set,
//! one clock read). Work that finds the budget spent stops with an error of its own
//! kind, which the server answers as 503.
//!
//! Work that cannot check the flag itself (a statement running in another process)
//! registers a hook with [`on_cancel`], run when the budget is cancelled.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// A deadline and a cancellation flag.
#[derive(Debug, Clone, Default)]
pub struct Budget {
    pub deadline: Option<Instant>,
    cancelled: Arc<AtomicBool>,
    hooks: Arc<Mutex<Hooks>>,
}

type Hook = Box<dyn FnOnce() + Send>;

/// What runs when a budget is cancelled.
#[derive(Default)]
struct Hooks {
    next: u64,
    fired: bool,
    waiting: Vec<(u64, Hook)>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hooks({})", self.waiting.len())
    }
}

/// A registered cancellation hook; dropping it unregisters the hook.
#[must_use = "the hook is unregistered when this is dropped"]
pub struct HookGuard {
    hooks: Weak<Mutex<Hooks>>,
    id: u64,
}

impl Drop for HookGuard {
    fn drop(&mut self) {
        if let Some(hooks) = self.hooks.upgrade() {
            let mut hooks = hooks.lock().unwrap_or_else(|p| p.into_inner());
            hooks.waiting.retain(|(id, _)| *id != self.id);
        }
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Budget>> = const { RefCell::new(None) };
}

impl Budget {
    /// A budget of `limit` from now (`None`: no deadline, only cancellation).
    pub fn new(limit: Option<Duration>) -> Budget {
        Budget {
            deadline: limit.map(|l| Instant::now() + l),
            ..Budget::default()
        }
    }

    /// Marks the work as abandoned (its client has gone): it stops at its next check,
    /// and the registered hooks run (on this thread: hooks must not block).
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
        let waiting = {
            let mut hooks = self.hooks.lock().unwrap_or_else(|p| p.into_inner());
            hooks.fired = true;
            std::mem::take(&mut hooks.waiting)
        };
        for (_, hook) in waiting {
            hook();
        }
    }

    /// Registers `hook` to run if this budget is cancelled while the guard lives (at
    /// once when it was cancelled already).
    pub fn on_cancel(&self, hook: impl FnOnce() + Send + 'static) -> HookGuard {
        let mut hooks = self.hooks.lock().unwrap_or_else(|p| p.into_inner());
        hooks.next += 1;
        let id = hooks.next;
        if hooks.fired {
            drop(hooks);
            hook();
        } else {
            hooks.waiting.push((id, Box::new(hook)));
        }
        HookGuard {
            hooks: Arc::downgrade(&self.hooks),
            id,
        }
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

/// Registers `hook` with this thread's budget (see [`Budget::on_cancel`]); `None`
/// when no budget is set.
pub fn on_cancel(hook: impl FnOnce() + Send + 'static) -> Option<HookGuard> {
    let budget = CURRENT.with(|c| c.borrow().clone())?;
    Some(budget.on_cancel(hook))
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

    #[test]
    fn hooks_run_once_on_cancel_unless_dropped() {
        use std::sync::atomic::AtomicUsize;
        let ran = Arc::new(AtomicUsize::new(0));
        let b = Budget::new(None);
        let counter = |ran: &Arc<AtomicUsize>| {
            let ran = ran.clone();
            move || {
                ran.fetch_add(1, Ordering::SeqCst);
            }
        };
        let kept = b.run(|| on_cancel(counter(&ran))).expect("a budget is set");
        drop(b.on_cancel(counter(&ran)));
        b.cancel();
        b.cancel();
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        let _late = b.on_cancel(counter(&ran));
        assert_eq!(
            ran.load(Ordering::SeqCst),
            2,
            "registered after cancel: runs at once"
        );
        drop(kept);
        assert!(on_cancel(|| ()).is_none(), "no budget outside run");
    }
}
