//! The Mailchimp half of the sandbox: a faithful emulator of the parts of the Marketing API v3
//! that audience-sync uses, served under `/3.0` (see [`router`]).
//!
//! Emulated, as the official spec and the fact sheet describe them: `GET /`, `/ping`; `/lists`
//! and `/lists/{list_id}`; members (GET/POST, and GET/PUT/PATCH/DELETE by subscriber hash, e-mail
//! or contact id; archive; `actions/delete-permanent`); member tags (GET; POST with
//! active/inactive, 204); segments (static segments are tags: GET/POST, GET/PATCH/POST/DELETE by
//! id, segment members GET/POST/DELETE); `tag-search`; merge fields. Paging with `count`
//! (default 10, capped at 1000) and `offset`, `total_items`, `_links`; `fields`/`exclude_fields`;
//! `status` and `since_last_changed` filters (archived members only with `status=archived`,
//! unless the seed's `list_archived_without_status` says otherwise); problem+json errors with Mailchimp's titles;
//! `X-Trigger-Error`; at most 50 tags on a member object with the full `tags_count`; HTTP Basic
//! (or Bearer) auth against the configured key; at most 10 simultaneous requests per key.
//!
//! Sandbox-only, under `/_sandbox/mailchimp/`: `GET|DELETE requests` (counters per route, the
//! largest concurrency seen), `GET|PUT faults` (fault injection at run time), `GET|PUT churn`
//! (a live audience: members change while requests are served, see [`churn`]) and
//! `GET journal` (every change churn made).
//!
//! Layout (the same words as the Dataverse half): `routes` (handlers by area: audiences and merge
//! fields, list members, tags), `model` (the account's data and its rules: members, tags),
//! `render` and `projection` (JSON shapes, `fields`), `errors` (problem+json), `seed` and
//! `populate` (seed and generator), `churn` (live changes and their journal), `persist` (state directory), `traffic` (counters,
//! connection limit, auth; faults come from [`crate::faults`]).
//!
//! Not emulated: campaigns, interests, saved segments (`options`), batches, webhooks. Tag
//! changes do not move a member's `last_changed` (as far as is known, nor do they in Mailchimp).

mod churn;
mod errors;
mod model;
mod persist;
mod populate;
mod projection;
mod render;
mod routes;
mod seed;
mod traffic;

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use axum::Json;
use axum::extract::State as AxumState;
use axum::routing::{get, post};
use chrono::Utc;

pub use self::churn::{ChangeKind, Churn, JournalEntry};
use self::model::{Audience, Data, MemberInput};
pub use self::model::{MemberStatus, md5_hex, subscriber_hash};
pub use self::seed::{AudienceSeed, MemberSeed, MergeFieldSeed, Seed};
use self::traffic::Traffic;
pub use self::traffic::{MAX_CONNECTIONS, RequestCounts};
use super::{Error, GenerateSpec};
use crate::faults::FaultState;
pub use crate::faults::{Burst, Faults};

/// The API key the sandbox accepts unless the seed sets one: fake, in Mailchimp's format.
pub const DEFAULT_API_KEY: &str = "5a4db0c5a4db0c5a4db0c5a4db0c5a4d-us21";

/// This half's state: the account's data, the counters and the fault settings.
#[derive(Debug)]
pub struct State {
    base_url: Mutex<String>,
    api_key: String,
    data: RwLock<Data>,
    traffic: Traffic,
    faults: Mutex<FaultState>,
    churn: Mutex<churn::ChurnState>,
    list_archived_without_status: bool,
    persist: Option<persist::Persist>,
}

/// Why a test helper could not change the data.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The emulated API refused it (unknown audience or member, a rule of Mailchimp's).
    #[error("the emulated Mailchimp refused the change (`{title}`): {detail}")]
    Refused {
        /// Mailchimp's title.
        title: String,
        /// Mailchimp's detail.
        detail: String,
    },
}

impl From<errors::Problem> for ChangeError {
    fn from(p: errors::Problem) -> Self {
        Self::Refused {
            title: p.title,
            detail: p.detail,
        }
    }
}

impl State {
    /// Build the state from a seed and generated data, or from the state directory's
    /// `mailchimp.json` when it exists (saved there from then on).
    ///
    /// # Errors
    /// The seed is invalid, or the state directory cannot be read or written.
    pub fn new(
        seed: &Seed,
        generate: Option<GenerateSpec>,
        state_dir: Option<&Path>,
    ) -> Result<Self, Error> {
        let persist = state_dir.map(persist::Persist::new).transpose()?;
        let data = match persist
            .as_ref()
            .map(persist::Persist::load)
            .transpose()?
            .flatten()
        {
            Some(saved) => saved,
            None => {
                let mut data = Data::default();
                populate::apply_seed(&mut data, seed)?;
                if let Some(spec) = generate {
                    populate::generate(&mut data, spec);
                }
                if let Some(persist) = &persist {
                    persist.save(&data)?;
                }
                data
            }
        };
        let api_key = seed
            .api_key
            .clone()
            .unwrap_or_else(|| DEFAULT_API_KEY.to_owned());
        Ok(Self {
            base_url: Mutex::new(String::new()),
            api_key,
            data: RwLock::new(data),
            traffic: Traffic::default(),
            faults: Mutex::new(FaultState::new(seed.faults.clone().unwrap_or_default())),
            churn: Mutex::new(churn::ChurnState::new(
                seed.churn.clone().unwrap_or_default(),
            )),
            list_archived_without_status: seed.list_archived_without_status.unwrap_or(false),
            persist,
        })
    }

    /// Save the data now, when a state directory is in use.
    ///
    /// # Errors
    /// The state file cannot be written.
    pub fn flush(&self) -> Result<(), Error> {
        let Some(persist) = &self.persist else {
            return Ok(());
        };
        persist.unmark();
        let data = self.data.read().unwrap_or_else(PoisonError::into_inner);
        persist.save(&data)
    }

    /// The data changed: save it soon (from a handler, on the runtime) or now (elsewhere).
    fn changed(self: &Arc<Self>) {
        let Some(persist) = &self.persist else {
            return;
        };
        if !persist.mark() {
            return;
        }
        let state = Arc::clone(self);
        let save = move || {
            if let Err(err) = state.flush() {
                tracing::error!(error = %err, "cannot save the Mailchimp sandbox state");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    let _ = tokio::task::spawn_blocking(save).await;
                });
            }
            Err(_) => save(),
        }
    }

    /// After a direct change by a test helper: save now when a state directory is in use.
    fn changed_now(&self) {
        if self.persist.is_some()
            && let Err(err) = self.flush()
        {
            tracing::error!(error = %err, "cannot save the Mailchimp sandbox state");
        }
    }

    /// Tell the state the address it is served at.
    pub fn set_base_url(&self, base_url: &str) {
        let mut guard = self.base_url.lock().unwrap_or_else(PoisonError::into_inner);
        base_url.trim_end_matches('/').clone_into(&mut guard);
    }

    /// `http://HOST:PORT/3.0`, for `_links`.
    fn api_root(&self) -> String {
        format!(
            "{}/3.0",
            self.base_url.lock().unwrap_or_else(PoisonError::into_inner)
        )
    }

    /// The `KEY=value` lines a config or script needs for this half.
    #[must_use]
    pub fn env(&self, base_url: &str) -> Vec<(String, String)> {
        vec![
            (
                "MAILCHIMP_BASE_URL".to_owned(),
                format!("{}/3.0", base_url.trim_end_matches('/')),
            ),
            ("MAILCHIMP_API_KEY".to_owned(), self.api_key.clone()),
        ]
    }

    /// The API key the sandbox accepts.
    #[must_use]
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    // ----- counters and faults ----------------------------------------------------------------

    /// Requests per route and the largest concurrency seen.
    #[must_use]
    pub fn requests(&self) -> RequestCounts {
        self.traffic.snapshot()
    }

    /// Requests to one route, e.g. `GET /3.0/lists/{list_id}/members`.
    #[must_use]
    pub fn requests_to(&self, route: &str) -> u64 {
        self.traffic
            .snapshot()
            .routes
            .get(route)
            .copied()
            .unwrap_or(0)
    }

    /// Start counting from zero.
    pub fn reset_requests(&self) {
        self.traffic.reset();
    }

    /// Replace the fault settings.
    pub fn set_faults(&self, faults: Faults) {
        *self.faults.lock().unwrap_or_else(PoisonError::into_inner) = FaultState::new(faults);
    }

    /// The fault settings now (bursts: what is left of them).
    #[must_use]
    pub fn faults(&self) -> Faults {
        self.faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .faults()
    }

    /// Replace the churn settings (the clock and the generator restart; the journal stays).
    pub fn set_churn(&self, settings: Churn) {
        self.churn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .set(settings);
    }

    /// The churn settings now.
    #[must_use]
    pub fn churn(&self) -> Churn {
        self.churn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .settings()
            .clone()
    }

    /// Every change churn made so far, oldest first.
    #[must_use]
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.churn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .journal()
            .to_vec()
    }

    /// Apply the churn changes due now (at the start of an API request).
    fn churn_tick(self: &Arc<Self>) {
        let mut churn = self.churn.lock().unwrap_or_else(PoisonError::into_inner);
        if !churn.active() {
            return;
        }
        let applied = {
            let mut data = self.data.write().unwrap_or_else(PoisonError::into_inner);
            churn.tick(&mut data, Utc::now())
        };
        drop(churn);
        if applied > 0 {
            self.changed();
        }
    }

    /// `(contact id, subscriber hash, e-mail, status)` of every member of an audience now.
    #[must_use]
    pub fn members_now(&self, list_id: &str) -> Vec<(String, String, String, MemberStatus)> {
        let data = self.data.read().unwrap_or_else(PoisonError::into_inner);
        data.audience(list_id).map_or_else(
            |_| Vec::new(),
            |a| {
                a.members
                    .iter()
                    .map(|m| {
                        (
                            m.contact_id.clone(),
                            m.hash.clone(),
                            m.email.clone(),
                            m.status,
                        )
                    })
                    .collect()
            },
        )
    }

    // ----- direct changes, for tests ("changes on the Mailchimp side") --------------------------

    fn change<T>(
        &self,
        list_id: &str,
        f: impl FnOnce(&mut Audience, &mut model::Ids) -> Result<T, errors::Problem>,
    ) -> Result<T, ChangeError> {
        let result = {
            let mut data = self.data.write().unwrap_or_else(PoisonError::into_inner);
            let (audience, ids) = data.audience_mut(list_id)?;
            f(audience, ids)?
        };
        self.changed_now();
        Ok(result)
    }

    /// Audience ids and names, in creation order.
    #[must_use]
    pub fn audiences(&self) -> Vec<(String, String)> {
        let data = self.data.read().unwrap_or_else(PoisonError::into_inner);
        data.audiences
            .iter()
            .map(|a| (a.id.clone(), a.name.clone()))
            .collect()
    }

    /// Members of an audience in any status (archived included).
    #[must_use]
    pub fn member_count(&self, list_id: &str) -> usize {
        let data = self.data.read().unwrap_or_else(PoisonError::into_inner);
        data.audience(list_id).map_or(0, |a| a.members.len())
    }

    /// Add an audience; returns its id.
    ///
    /// # Errors
    /// The seed is invalid (e.g. a duplicate id).
    pub fn add_audience(&self, seed: &AudienceSeed) -> Result<String, Error> {
        let id = {
            let mut data = self.data.write().unwrap_or_else(PoisonError::into_inner);
            let before = data.audiences.len();
            populate::apply_seed(
                &mut data,
                &Seed {
                    audiences: vec![seed.clone()],
                    ..Seed::default()
                },
            )?;
            data.audiences[before].id.clone()
        };
        self.changed_now();
        Ok(id)
    }

    /// Add a member (as POST would, without merge-field validation); returns its subscriber hash.
    ///
    /// # Errors
    /// Unknown audience, "Member Exists", "Forgotten Email Not Subscribed".
    pub fn add_member(&self, list_id: &str, member: &MemberSeed) -> Result<String, ChangeError> {
        let input = MemberInput {
            email: Some(member.email.clone()),
            status: Some(member.status),
            merge_fields: Some(member.merge_fields.clone()),
            tags: Some(member.tags.clone()),
            language: member.language.clone(),
            vip: Some(member.vip),
            country_code: member.country_code.clone(),
            contact_id: member.contact_id.clone(),
            skip_merge_validation: true,
            ..MemberInput::default()
        };
        self.change(list_id, |a, ids| {
            let i = a.add_member(input, ids, Utc::now())?;
            Ok(a.members[i].hash.clone())
        })
    }

    /// Set a member's status (`archived` archives it), bypassing Mailchimp's compliance rules
    /// as a person in the web app could not, but as time can (e.g. a bounce cleans a member).
    ///
    /// # Errors
    /// Unknown audience or member.
    pub fn set_status(
        &self,
        list_id: &str,
        email: &str,
        status: MemberStatus,
    ) -> Result<(), ChangeError> {
        self.change(list_id, |a, _| {
            let i = a.find(email).ok_or_else(errors::Problem::not_found)?;
            let m = &mut a.members[i];
            m.status = status;
            m.last_changed = Utc::now();
            Ok(())
        })
    }

    /// Change a member's e-mail address (its subscriber hash changes, its contact id does not).
    ///
    /// # Errors
    /// Unknown audience or member, "Member Exists".
    pub fn change_email(
        &self,
        list_id: &str,
        email: &str,
        new_email: &str,
    ) -> Result<String, ChangeError> {
        self.change(list_id, |a, ids| {
            let i = a.find(email).ok_or_else(errors::Problem::not_found)?;
            let input = MemberInput {
                email: Some(new_email.to_owned()),
                skip_merge_validation: true,
                ..MemberInput::default()
            };
            let i = a.update_member(i, input, ids, Utc::now())?;
            Ok(a.members[i].hash.clone())
        })
    }

    /// Set one merge field of a member.
    ///
    /// # Errors
    /// Unknown audience or member.
    pub fn set_merge_field(
        &self,
        list_id: &str,
        email: &str,
        tag: &str,
        value: serde_json::Value,
    ) -> Result<(), ChangeError> {
        self.change(list_id, |a, _| {
            let i = a.find(email).ok_or_else(errors::Problem::not_found)?;
            let m = &mut a.members[i];
            m.merge_fields.insert(tag.to_owned(), value);
            m.last_changed = Utc::now();
            Ok(())
        })
    }

    /// Tag or untag a member (`active` false removes the tag); a new tag name creates the tag.
    ///
    /// # Errors
    /// Unknown audience or member.
    pub fn set_tag(
        &self,
        list_id: &str,
        email: &str,
        tag: &str,
        active: bool,
    ) -> Result<(), ChangeError> {
        self.change(list_id, |a, ids| {
            a.set_member_tags(email, &[(tag.to_owned(), active)], ids, Utc::now())
        })
    }

    /// Rename a tag.
    ///
    /// # Errors
    /// Unknown audience or tag, or the new name is taken.
    pub fn rename_tag(&self, list_id: &str, name: &str, new_name: &str) -> Result<(), ChangeError> {
        self.change(list_id, |a, _| {
            let id = a.tag_id(name).ok_or_else(errors::Problem::not_found)?;
            a.update_tag(id, new_name, None, Utc::now())
        })
    }

    /// Delete a tag (it disappears from every member).
    ///
    /// # Errors
    /// Unknown audience or tag.
    pub fn delete_tag(&self, list_id: &str, name: &str) -> Result<(), ChangeError> {
        self.change(list_id, |a, _| {
            let id = a.tag_id(name).ok_or_else(errors::Problem::not_found)?;
            a.delete_tag(id)
        })
    }

    /// Delete a member for good (its address can never be added again).
    ///
    /// # Errors
    /// Unknown audience or member.
    pub fn delete_member_permanently(&self, list_id: &str, email: &str) -> Result<(), ChangeError> {
        self.change(list_id, |a, _| a.delete_permanent(email))
    }

    /// Make a merge field required or optional.
    ///
    /// # Errors
    /// Unknown audience or merge field.
    pub fn set_merge_field_required(
        &self,
        list_id: &str,
        tag: &str,
        required: bool,
    ) -> Result<(), ChangeError> {
        self.change(list_id, |a, _| {
            let f = a
                .merge_fields
                .iter_mut()
                .find(|f| f.tag == tag)
                .ok_or_else(errors::Problem::not_found)?;
            f.required = required;
            Ok(())
        })
    }
}

async fn get_churn(AxumState(state): AxumState<Arc<State>>) -> Json<Churn> {
    Json(state.churn())
}

async fn put_churn(
    AxumState(state): AxumState<Arc<State>>,
    Json(churn): Json<Churn>,
) -> Json<Churn> {
    state.set_churn(churn);
    Json(state.churn())
}

async fn get_journal(AxumState(state): AxumState<Arc<State>>) -> Json<Vec<JournalEntry>> {
    Json(state.journal())
}

async fn get_requests(AxumState(state): AxumState<Arc<State>>) -> Json<RequestCounts> {
    Json(state.requests())
}

async fn delete_requests(AxumState(state): AxumState<Arc<State>>) -> axum::http::StatusCode {
    state.reset_requests();
    axum::http::StatusCode::NO_CONTENT
}

async fn get_faults(AxumState(state): AxumState<Arc<State>>) -> Json<Faults> {
    Json(state.faults())
}

async fn put_faults(
    AxumState(state): AxumState<Arc<State>>,
    Json(faults): Json<Faults>,
) -> Json<Faults> {
    state.set_faults(faults);
    Json(state.faults())
}

/// The routes of this half: the API under `/3.0`, the sandbox-only paths under
/// `/_sandbox/mailchimp`.
pub fn router(state: Arc<State>) -> axum::Router {
    use routes as r;
    let m = || r::wrong_method;
    let api = axum::Router::new()
        .route("/3.0", get(r::root).fallback(m()))
        .route("/3.0/", get(r::root).fallback(m()))
        .route("/3.0/ping", get(r::ping).fallback(m()))
        .route("/3.0/lists", get(r::lists).fallback(m()))
        .route("/3.0/lists/{list_id}", get(r::list).fallback(m()))
        .route(
            "/3.0/lists/{list_id}/members",
            get(r::members).post(r::add_member).fallback(m()),
        )
        .route(
            "/3.0/lists/{list_id}/members/{subscriber_hash}",
            get(r::member)
                .put(r::put_member)
                .patch(r::patch_member)
                .delete(r::archive_member)
                .fallback(m()),
        )
        .route(
            "/3.0/lists/{list_id}/members/{subscriber_hash}/tags",
            get(r::member_tags).post(r::set_member_tags).fallback(m()),
        )
        .route(
            "/3.0/lists/{list_id}/members/{subscriber_hash}/actions/delete-permanent",
            post(r::delete_permanent).fallback(m()),
        )
        .route(
            "/3.0/lists/{list_id}/segments",
            get(r::segments).post(r::create_segment).fallback(m()),
        )
        .route(
            "/3.0/lists/{list_id}/segments/{segment_id}",
            get(r::segment)
                .patch(r::update_segment)
                .post(r::batch_segment)
                .delete(r::delete_segment)
                .fallback(m()),
        )
        .route(
            "/3.0/lists/{list_id}/segments/{segment_id}/members",
            get(r::segment_members)
                .post(r::add_segment_member)
                .fallback(m()),
        )
        .route(
            "/3.0/lists/{list_id}/segments/{segment_id}/members/{subscriber_hash}",
            axum::routing::delete(r::remove_segment_member).fallback(m()),
        )
        .route(
            "/3.0/lists/{list_id}/tag-search",
            get(r::tag_search).fallback(m()),
        )
        .route(
            "/3.0/lists/{list_id}/merge-fields",
            get(r::merge_fields).fallback(m()),
        )
        .route(
            "/3.0/lists/{list_id}/merge-fields/{merge_id}",
            get(r::merge_field).fallback(m()),
        )
        .route("/3.0/{*rest}", axum::routing::any(r::unknown_path))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            traffic::guard,
        ));
    let sandbox = axum::Router::new()
        .route(
            "/_sandbox/mailchimp/requests",
            get(get_requests).delete(delete_requests),
        )
        .route(
            "/_sandbox/mailchimp/faults",
            get(get_faults).put(put_faults),
        )
        .route("/_sandbox/mailchimp/churn", get(get_churn).put(put_churn))
        .route("/_sandbox/mailchimp/journal", get(get_journal));
    api.merge(sandbox).with_state(state)
}
