//! Plumbing between the C ABI and the core: handles, the panic boundary, strings and the
//! result enum. No product logic lives here.

pub mod boundary;
pub mod calls;
pub mod objects;
pub mod registry;
pub mod result;
pub mod strings;
