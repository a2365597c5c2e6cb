//! The platform's operators on the platform's log (stream `operators`): named super_admin
//! keys, each action of which names the operator, and the bootstrap key that makes the
//! first of them and can then be retired.

use std::collections::BTreeMap;

use crate::context::{Role, TenantContext};
use crate::event::{BootstrapKeyRetired, Event, OperatorCreated, OperatorRemoved};
use crate::ids::{OperatorId, StreamId};
use crate::rejection::Rejection;
use crate::validate;

/// The platform stream all operators live on.
pub fn stream() -> StreamId {
    "operators".parse().unwrap_or_else(|_| unreachable!("a valid stream id"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorEntry {
    pub name: String,
    /// Keyed hash of the key's secret.
    pub secret_hash: Vec<u8>,
    pub removed: bool,
}

/// What the platform knows of its operators.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperatorsState {
    pub operators: BTreeMap<OperatorId, OperatorEntry>,
    pub bootstrap_retired: bool,
}

impl OperatorsState {
    pub fn active(&self) -> usize {
        self.operators.values().filter(|o| !o.removed).count()
    }

    /// An operator whose key still works.
    pub fn live(&self, id: OperatorId) -> Option<&OperatorEntry> {
        self.operators.get(&id).filter(|o| !o.removed)
    }
}

/// What can be asked of the platform's operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorCommand {
    Create {
        operator_id: OperatorId,
        name: String,
        secret_hash: Vec<u8>,
    },
    Remove {
        operator_id: OperatorId,
    },
    /// Retire the bootstrap key: from then on only named operators act for the platform.
    RetireBootstrap,
}

fn platform_only(ctx: &TenantContext) -> Result<(), Rejection> {
    if ctx.role == Role::SuperAdmin { Ok(()) } else { Err(Rejection::Forbidden) }
}

/// Decide an operator command. The platform always keeps a way in: the last operator is
/// not removed while the bootstrap key is retired, and the bootstrap key is not retired
/// before there is an operator.
pub fn decide(
    ctx: &TenantContext,
    state: &OperatorsState,
    command: &OperatorCommand,
) -> Result<Vec<Event>, Rejection> {
    platform_only(ctx)?;
    match command {
        OperatorCommand::Create { operator_id, name, secret_hash } => {
            if state.operators.contains_key(operator_id) {
                return Err(Rejection::OperatorAlreadyExists(*operator_id));
            }
            let name = name.trim();
            validate::text("name", name, 1, 200)?;
            Ok(vec![Event::OperatorCreated(OperatorCreated {
                operator_id: *operator_id,
                name: name.to_owned(),
                secret_hash: secret_hash.clone(),
            })])
        }
        OperatorCommand::Remove { operator_id } => {
            state.live(*operator_id).ok_or(Rejection::OperatorNotFound(*operator_id))?;
            if state.bootstrap_retired && state.active() == 1 {
                return Err(Rejection::LastWayIn);
            }
            Ok(vec![Event::OperatorRemoved(OperatorRemoved { operator_id: *operator_id })])
        }
        OperatorCommand::RetireBootstrap => {
            if state.bootstrap_retired {
                return Ok(vec![]);
            }
            if state.active() == 0 {
                return Err(Rejection::LastWayIn);
            }
            Ok(vec![Event::BootstrapKeyRetired(BootstrapKeyRetired {})])
        }
    }
}

pub fn evolve(mut state: OperatorsState, event: &Event) -> OperatorsState {
    match event {
        Event::OperatorCreated(e) => {
            state.operators.insert(
                e.operator_id,
                OperatorEntry { name: e.name.clone(), secret_hash: e.secret_hash.clone(), removed: false },
            );
        }
        Event::OperatorRemoved(e) => {
            if let Some(o) = state.operators.get_mut(&e.operator_id) {
                o.removed = true;
            }
        }
        Event::BootstrapKeyRetired(_) => state.bootstrap_retired = true,
        _ => {}
    }
    state
}
