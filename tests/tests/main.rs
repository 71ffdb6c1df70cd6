//! The privileged end-to-end tests, as one binary: each module was its own test crate,
//! and every such crate links the whole agent (yara-x, wasmtime, aya), ~100 MB apiece.
//! Run by `cargo xtask test` as root, one test at a time.

mod alerts_e2e;
mod behaviour_e2e;
mod cerberus_e2e;
mod csm_contract_e2e;
mod dashboard_e2e;
mod dbobjects_e2e;
mod detection_e2e;
mod e2e;
mod egress_e2e;
mod exec_e2e;
mod file_sensor;
mod firewall_e2e;
mod hardening_e2e;
mod kernels;
mod logs_e2e;
mod mail_av_e2e;
mod openapi_e2e;
mod package_e2e;
mod sensor_backends_e2e;
mod sensor_e2e;
mod sensor_truth_e2e;
mod service_e2e;
mod signatures_fp;
mod xdp_fixtures;
