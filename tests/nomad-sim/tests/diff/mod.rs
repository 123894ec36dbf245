//! The differential test's machinery: the real agent, the recorded conversations, their
//! normalization and comparison, the exceptions list and the script.

pub mod agent;
pub mod client;
pub mod compare;
pub mod exceptions;
pub mod normalize;
pub mod script;
