//! The emulator probe: its CPU per request, route by route, so that two table sizes compare
//! like for like (a plan's requests mix a size-dependent number of member pages with a fixed
//! number of cheap ones, so its CPU per request is no such comparison). After the steady state's
//! set-up (Dataverse holds every member as a contact in the audience's list, with tag links), it
//! sends the reads a `plan` sends — Mailchimp member pages spread over the whole audience, the
//! list with its counts, its tags with theirs, a catch-up read; Dataverse pages of the list's
//! contacts, of its `listmember` rows and of one tag's contacts — and reads the sandbox's CPU
//! (`/proc/PID/task/*/schedstat`, nanoseconds) around each route's requests. Each route is read
//! once first and that first request's cost reported apart: it builds what the route's later
//! requests read (a sorted listing, the counts; after every change of the audience), once.

use anyhow::Context as _;
use serde_json::Value;

use crate::http::SandboxApi;
use crate::proc::SandboxProcess;

/// Member pages read, spread evenly over the audience.
const MEMBER_PAGES: usize = 40;
/// Requests of each cheap route (list, tags, catch-up).
const CHEAP: usize = 50;
/// Dataverse pages (of 5,000 rows) read per route, from the first.
const DATAVERSE_PAGES: usize = 12;

/// The member fields a `plan` asks for (`src/mailchimp/types.rs`, `fields_param`).
const MEMBER_FIELDS: &str = "members.id,members.email_address,members.status,members.contact_id,\
                             members.last_changed,members.merge_fields,members.tags,\
                             members.tags_count,total_items";

/// What one route cost.
#[derive(Debug, Clone)]
pub struct RouteCost {
    pub route: &'static str,
    /// Emulator CPU milliseconds of the first request (which may build an index).
    pub first_ms: f64,
    /// Emulator CPU milliseconds per request after it.
    pub ms: f64,
    /// Rows (members, records) per request.
    pub rows: f64,
}

/// Probe every route once at this sandbox's size.
pub async fn run(sandbox: &SandboxProcess, api: &SandboxApi) -> anyhow::Result<Vec<RouteCost>> {
    let lists = api
        .mailchimp_get("/lists?count=10&fields=lists.id,lists.name")
        .await?;
    let list_id = lists["lists"][0]["id"]
        .as_str()
        .context("no audience")?
        .to_owned();
    let list_name = lists["lists"][0]["name"]
        .as_str()
        .context("no name")?
        .to_owned();
    let enc = |s: &str| urlencoding::encode(s).into_owned();
    let fields = enc(MEMBER_FIELDS);
    let page = |sort: &str, offset: usize| {
        format!(
            "/lists/{list_id}/members?count=1000&offset={offset}&fields={fields}\
             &sort_field={sort}&sort_dir=ASC&status=subscribed"
        )
    };
    // The first page (it builds the sorted listing, once per change) tells the total.
    let before = sandbox.cpu_fine()?;
    let first = api.mailchimp_get(&page("timestamp_signup", 0)).await?;
    let first_ms = (sandbox.cpu_fine()? - before) * 1e3;
    let total = first["total_items"].as_u64().context("no total_items")? as usize;
    let mut out = Vec::new();

    let offsets: Vec<String> = (0..MEMBER_PAGES)
        .map(|i| {
            page(
                "timestamp_signup",
                total.saturating_sub(1000) * i / MEMBER_PAGES,
            )
        })
        .collect();
    let pages = mailchimp(sandbox, api, "Mailchimp member page", &offsets, "members").await?;
    out.push(RouteCost { first_ms, ..pages });
    let list = format!(
        "/lists/{list_id}?fields={}&include_total_contacts=true",
        enc("id,name,stats.member_count,stats.total_contacts")
    );
    out.push(
        mailchimp(
            sandbox,
            api,
            "Mailchimp list (counts)",
            &vec![list; CHEAP],
            "",
        )
        .await?,
    );
    let tags = format!(
        "/lists/{list_id}/segments?type=static&count=1000&offset=0&fields={}",
        enc("segments.id,segments.name,segments.member_count,total_items")
    );
    out.push(
        mailchimp(
            sandbox,
            api,
            "Mailchimp tags (counts)",
            &vec![tags; CHEAP],
            "segments",
        )
        .await?,
    );
    let since = (chrono::Utc::now() - chrono::Duration::minutes(30))
        .format("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string();
    let catch_up = format!(
        "{}&since_last_changed={}",
        page("last_changed", 0),
        enc(&since)
    );
    out.push(
        mailchimp(
            sandbox,
            api,
            "Mailchimp catch-up read",
            &vec![catch_up; CHEAP],
            "members",
        )
        .await?,
    );

    let dv = api.dataverse().await?;
    let filter = |f: String| format!("$filter={}", enc(&f));
    let lists = api
        .dataverse_get(
            &dv,
            &format!(
                "lists?$select=listid&{}",
                filter(format!("listname eq '{}'", list_name.replace('\'', "''")))
            ),
        )
        .await?;
    let list = lists["value"][0]["listid"]
        .as_str()
        .context("no list")?
        .to_owned();
    let tags = api
        .dataverse_get(&dv, "mcsync_tags?$select=mcsync_tagid")
        .await?;
    let tag = tags["value"][0]["mcsync_tagid"]
        .as_str()
        .context("no tag")?
        .to_owned();
    let routes = [
        (
            "Dataverse contacts of the list",
            format!(
                "contacts?$select=contactid,emailaddress1,firstname,lastname,\
                 mcsync_mailchimpcontactid,mcsync_mailchimpstatus,donotbulkemail,statecode&{}",
                filter(format!("listcontact_association/any(l:l/listid eq {list})"))
            ),
        ),
        (
            "Dataverse listmembers of the list",
            format!(
                "listmembers?$select=_entityid_value,listmemberid&{}",
                filter(format!("_listid_value eq {list}"))
            ),
        ),
        (
            "Dataverse contacts of a tag",
            format!(
                "contacts?$select=contactid&{}",
                filter(format!("mcsync_tag_contact/any(t:t/mcsync_tagid eq {tag})"))
            ),
        ),
    ];
    for (route, first) in routes {
        let before = sandbox.cpu_fine()?;
        api.dataverse_get(&dv, &first).await?;
        let first_ms = (sandbox.cpu_fine()? - before) * 1e3;
        let before = sandbox.cpu_fine()?;
        let (mut pages, mut rows, mut next) = (0usize, 0usize, Some(first));
        while let Some(url) = next.take().filter(|_| pages < DATAVERSE_PAGES) {
            let page = api.dataverse_get(&dv, &url).await?;
            pages += 1;
            rows += page["value"].as_array().map_or(0, Vec::len);
            next = page["@odata.nextLink"].as_str().map(str::to_owned);
        }
        let cpu = sandbox.cpu_fine()? - before;
        out.push(RouteCost {
            route,
            first_ms,
            ms: cpu * 1e3 / pages.max(1) as f64,
            rows: rows as f64 / pages.max(1) as f64,
        });
    }
    Ok(out)
}

/// Send these Mailchimp requests one after another, after the first of them once on its own;
/// `items` names the array counted as rows.
async fn mailchimp(
    sandbox: &SandboxProcess,
    api: &SandboxApi,
    route: &'static str,
    paths: &[String],
    items: &str,
) -> anyhow::Result<RouteCost> {
    let first = paths.first().context("no request")?;
    let before = sandbox.cpu_fine()?;
    api.mailchimp_get(first).await?;
    let first_ms = (sandbox.cpu_fine()? - before) * 1e3;
    let before = sandbox.cpu_fine()?;
    let mut rows = 0;
    for path in paths {
        let answer: Value = api.mailchimp_get(path).await?;
        rows += answer[items].as_array().map_or(1, Vec::len);
    }
    let cpu = sandbox.cpu_fine()? - before;
    let n = paths.len().max(1) as f64;
    Ok(RouteCost {
        route,
        first_ms,
        ms: cpu * 1e3 / n,
        rows: rows as f64 / n,
    })
}
