//! A small given/when/then harness for deciders.
//!
//! ```
//! use tenantry_domain::testing::Scenario;
//! use tenantry_domain::tenant::{decide, evolve, TenantState, TenantCommand};
//! use tenantry_domain::{Event, TenantContext, TenantId, Rejection};
//!
//! let ctx = TenantContext::system(TenantId::new());
//! Scenario::new(TenantState::new(Default::default()), evolve)
//!     .given(&[])
//!     .when(|s| decide(&ctx, s, &TenantCommand::ResumeTenant(tenantry_domain::command::ResumeTenant)))
//!     .then_rejected(Rejection::TenantNotFound);
//! ```

use crate::event::Event;
use crate::rejection::Rejection;

/// A decider under test: a starting state and its `evolve`.
#[derive(Debug)]
pub struct Scenario<S, E> {
    state: S,
    evolve: E,
}

/// The outcome of `when`, to assert on.
#[derive(Debug)]
pub struct Outcome(Result<Vec<Event>, Rejection>);

impl<S, E: Fn(S, &Event) -> S> Scenario<S, E> {
    pub fn new(initial: S, evolve: E) -> Self {
        Self { state: initial, evolve }
    }

    /// Fold past events into the state.
    pub fn given(mut self, events: &[Event]) -> Self {
        for event in events {
            self.state = (self.evolve)(self.state, event);
        }
        self
    }

    pub fn when(self, decide: impl FnOnce(&S) -> Result<Vec<Event>, Rejection>) -> Outcome {
        Outcome(decide(&self.state))
    }

    pub fn state(&self) -> &S {
        &self.state
    }
}

impl Outcome {
    #[track_caller]
    pub fn then(self, expected: &[Event]) {
        assert_eq!(self.0.as_deref(), Ok(expected));
    }

    #[track_caller]
    pub fn then_rejected(self, expected: Rejection) {
        assert_eq!(self.0, Err(expected));
    }
}
