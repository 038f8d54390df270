//! End-to-end tests: the real binaries on loopback. One binary, a module per scenario.

mod alerting;
mod e2e;
mod gateway;
mod homeassistant;
mod recorder;
mod walking_skeleton;
