//! pypool's wire protocol (placeholder lib; see messages.rs).
mod messages;
pub use messages::*;
