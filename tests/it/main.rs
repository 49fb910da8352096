//! Integration tests: the CLI and the library against the sandbox over HTTP.

mod apply;
mod cli;
mod common;
mod config_catalogue;
mod config_fuzz;
mod crm_semantics;
mod dataverse;
mod demo;
mod examples;
mod lease;
mod live_audience;
mod live_churn;
mod mailchimp;
mod pii;
mod plan;
mod reliability;
mod replicas;
mod saved_plan;
mod saved_plan_since;
mod schema;
mod timeouts;
mod typed_columns;
mod watch;
mod watch_live;
