//! The read side of tenantry: projector runtime and read models.
