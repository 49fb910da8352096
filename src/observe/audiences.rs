//! The Mailchimp account's audiences, each with its tag count: what `audiences` lists and what
//! `init` (and `sandbox --print-config`) writes a starter binding for.

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::mailchimp::{self, Audience, Client};

/// Why the audiences could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum AudiencesError {
    /// The audience list could not be read.
    #[error("cannot list the Mailchimp audiences")]
    List(#[source] mailchimp::Error),
    /// One audience's tags could not be counted.
    #[error("cannot count the tags of audience `{audience}`")]
    Tags {
        /// The audience id.
        audience: String,
        /// Why.
        #[source]
        source: mailchimp::Error,
    },
}

/// An audience with its tag count.
#[derive(Debug, Clone, Serialize)]
pub struct AudienceSummary {
    /// The audience.
    #[serde(flatten)]
    pub audience: Audience,
    /// Its tags.
    pub tag_count: usize,
}

/// Every audience with its tag count (tag counts read concurrently, within the client's limit).
///
/// # Errors
/// Mailchimp could not be read.
pub async fn audiences(client: &Client) -> Result<Vec<AudienceSummary>, AudiencesError> {
    let audiences = client.lists().await.map_err(AudiencesError::List)?;
    futures::stream::iter(audiences)
        .map(|audience| async move {
            let tag_count =
                client
                    .tag_count(&audience.id)
                    .await
                    .map_err(|source| AudiencesError::Tags {
                        audience: audience.id.clone(),
                        source,
                    })?;
            Ok(AudienceSummary {
                audience,
                tag_count,
            })
        })
        .buffered(mailchimp::MAX_CONNECTIONS)
        .try_collect()
        .await
}
