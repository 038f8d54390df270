//! End-to-end tests: the real binaries on loopback. One binary, a module per scenario.

mod e2e;
mod gateway;
mod recorder;
mod sessions;
mod walking_skeleton;
