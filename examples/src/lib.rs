//! Runnable rollback playbooks; see the `examples/` directory.
