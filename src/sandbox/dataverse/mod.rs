//! The Dataverse half of the sandbox. (To be filled in by the Dataverse issue.)

pub mod auth;
pub mod error;
pub mod filter;
pub mod limits;
pub mod meta;
pub mod query;
pub mod store;
pub mod value;

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use super::{Error, GenerateSpec};

/// Seed data for this half.
#[derive(Debug, Default, Deserialize)]
pub struct Seed {}

/// This half's state.
#[derive(Debug, Default)]
pub struct State {
    base_url: Mutex<String>,
}

impl State {
    /// Build the state from a seed, generated data and a state directory.
    ///
    /// # Errors
    /// The state directory cannot be read.
    pub fn new(
        _seed: &Seed,
        _generate: Option<GenerateSpec>,
        _state_dir: Option<&Path>,
    ) -> Result<Self, Error> {
        Ok(Self::default())
    }

    /// Tell the state the address it is served at.
    pub fn set_base_url(&self, base_url: &str) {
        if let Ok(mut guard) = self.base_url.lock() {
            base_url.clone_into(&mut guard);
        }
    }

    /// The `KEY=value` lines a config or script needs for this half.
    #[must_use]
    pub fn env(&self, _base_url: &str) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// The routes of this half.
pub fn router(_state: Arc<State>) -> axum::Router {
    axum::Router::new()
}
