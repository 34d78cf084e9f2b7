//! Every exported `extern "C"` function, one file per object. Each is a few lines that
//! convert arguments and call the core through `ffi::boundary::run`.

pub mod common;
pub mod http;
pub mod json;
pub mod key;
