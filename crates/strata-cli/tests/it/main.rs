//! Integration tests: the real `strata` binary against real SQLite files and a real
//! PostgreSQL server (a fresh database per test).

mod adopt;
mod api;
mod authoring;
mod bad_input;
mod bookkeeping;
mod cluster;
mod commands;
mod concurrency;
mod corpora;
mod crash;
mod docsref;
mod docstores;
mod docsupport;
mod failures;
mod faults;
mod firsthour;
mod fleet;
mod galera;
mod layouts;
mod lint;
mod operate;
mod pgbouncer;
mod projects;
mod refusals;
mod safety;
mod secrets;
mod server;
mod support;
mod topology;
