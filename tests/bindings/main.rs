//! The bindings other than Python (that one is tests/pytest.rs): C programs against the
//! header and the cdylib, the C sample and the C++ binding, and the SQL Server (C#) binding
//! under mono — each against the real peers.

#[path = "../common/mod.rs"]
mod common;

mod c_cpp_samples;
mod c_programs;
mod csharp;
