//! End-to-end tests: the real binaries on loopback. One binary, a module per scenario.

mod e2e;
mod faults;
mod gateway;
mod recorder;
mod walking_skeleton;
