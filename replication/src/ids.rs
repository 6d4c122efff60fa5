//! The names every model and message uses for nodes: a leaf module, so that the models,
//! the replica vocabulary and the settings can all name a node without importing each
//! other.

/// A node's name (`n1`, `n2`, …).
pub type NodeId = String;
