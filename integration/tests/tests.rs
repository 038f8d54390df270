//! End-to-end tests: the real binaries on loopback. One binary, a module per scenario.

mod alerting;
mod backups;
mod crash;
mod e2e;
mod email;
mod faults;
mod faults_outage;
mod faults_traffic;
mod gateway;
mod homeassistant;
mod ops;
mod packaging;
mod recorder;
mod restore;
mod retained;
mod runbook;
mod secrets_in_logs;
mod sessions;
mod walking_skeleton;
mod websocket;
