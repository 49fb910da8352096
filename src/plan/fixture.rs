//! Test fixtures: builders of bindings and snapshots, and one fixed scenario that holds every change
//! kind, every per-member conflict, every per-binding error, a warning, an unmanaged list member
//! and a refusing guard (the renderers' snapshot tests use it).

use md5::{Digest as _, Md5};
use uuid::Uuid;

use super::model::{BindingPlan, Plan, PlanMeta};
use super::snapshot::{
    Audience, AudienceRecord, CrmRecord, CrmSide, MailchimpSide, MarketingList, Member, Snapshot,
    Tag, TagRecord, crm_columns, member_field_paths,
};
use crate::config::{Binding, Config, MemberStatus, Names, resolve};

/// Resolve the bindings of a YAML config body (`bindings:` and optional `defaults:`).
pub(crate) fn bindings(yaml_bindings: &str) -> (Vec<Binding>, Names) {
    let text = format!(
        "version: 1\nmailchimp: {{api_key: \"${{MAILCHIMP_API_KEY}}\"}}\ndataverse: {{url: \"https://contoso.crm.dynamics.com\", tenant_id: t, client_id: c, client_secret: \"${{S}}\"}}\n{yaml_bindings}"
    );
    let value = crate::config::yaml::parse_value(&text).expect("fixture YAML parses");
    let config: Config = serde_json::from_value(value).expect("fixture config is valid");
    (resolve(&config), Names::default())
}

/// A deterministic id for fixture records.
pub(crate) fn uuid(n: u128) -> Uuid {
    Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0000 | n)
}

/// Builds one binding's snapshot.
pub(crate) struct Builder {
    pub(crate) snapshot: Snapshot,
}

impl Builder {
    pub(crate) fn new(binding: &Binding, names: &Names, audience: (&str, &str)) -> Self {
        Self {
            snapshot: Snapshot {
                mailchimp: MailchimpSide {
                    audience: Audience {
                        id: audience.0.to_owned(),
                        name: audience.1.to_owned(),
                    },
                    tags: Vec::new(),
                    field_paths: member_field_paths(binding),
                    members: Vec::new(),
                    read_at: None,
                },
                crm: CrmSide {
                    audience: None,
                    list: None,
                    tags: Vec::new(),
                    columns: crm_columns(binding, names),
                    column_types: std::collections::BTreeMap::new(),
                    records: Vec::new(),
                },
            },
        }
    }

    pub(crate) fn audience_record(mut self, id: Uuid, name: &str) -> Self {
        self.snapshot.crm.audience = Some(AudienceRecord {
            id,
            etag: "W/\"100\"".into(),
            name: name.to_owned(),
            sync_status: Some("succeeded".into()),
        });
        self
    }

    pub(crate) fn list(
        mut self,
        id: Uuid,
        name: &str,
        code: u8,
        dynamic: bool,
        audience: Option<Uuid>,
    ) -> Self {
        self.snapshot.crm.list = Some(MarketingList {
            id,
            name: name.to_owned(),
            dynamic,
            member_type_code: code,
            statecode: 0,
            locked: false,
            etag: "W/\"200\"".into(),
            audience_record: audience,
        });
        self
    }

    pub(crate) fn tag(mut self, id: u64, name: &str) -> Self {
        self.snapshot.mailchimp.tags.push(Tag {
            id,
            name: name.to_owned(),
            member_count: 1,
        });
        self
    }

    pub(crate) fn tag_record(mut self, id: Uuid, mailchimp_id: u64, name: &str) -> Self {
        self.snapshot.crm.tags.push(TagRecord {
            id,
            mailchimp_id,
            name: name.to_owned(),
            etag: "W/\"300\"".into(),
        });
        self
    }

    /// A member; `contact_id` is `c-` and the address's local part.
    pub(crate) fn member(
        mut self,
        email: &str,
        status: MemberStatus,
        fields: &[(&str, &str)],
        tags: &[u64],
    ) -> Self {
        let side = &self.snapshot.mailchimp;
        let mut values: Vec<Option<&str>> = vec![None; side.field_paths.len()];
        for (path, value) in fields
            .iter()
            .copied()
            .chain([("email_address", email), ("status", status.as_str())])
        {
            if let Some(i) = side.path_index(path) {
                values[i] = Some(value);
            }
        }
        let local = email.split('@').next().unwrap_or(email);
        let hash = hex::encode(Md5::digest(email.to_lowercase().as_bytes()));
        let member = Member::new(
            &hash,
            &format!("c-{local}"),
            email,
            status,
            "2026-03-01T10:00:00+00:00",
            values,
            tags.to_vec(),
        );
        self.snapshot.mailchimp.members.push(member);
        self
    }

    /// A CRM record; `columns` holds every non-empty column (e-mail and stored id included).
    #[allow(clippy::too_many_arguments)] // a test builder, called with literals
    pub(crate) fn record(
        mut self,
        id: Uuid,
        columns: &[(&str, &str)],
        do_not_bulk_email: bool,
        tag_links: &[Uuid],
        on_list: bool,
    ) -> Self {
        let crm = &self.snapshot.crm;
        let mut values: Vec<Option<&str>> = vec![None; crm.columns.len()];
        for (column, value) in columns {
            if let Some(i) = crm.column_index(column) {
                values[i] = Some(value);
            }
        }
        let etag = format!("W/\"{}\"", id.as_u128() & 0xffff);
        let record = CrmRecord::new(
            id,
            &etag,
            values,
            do_not_bulk_email,
            tag_links.to_vec(),
            on_list,
        );
        self.snapshot.crm.records.push(record);
        self
    }

    pub(crate) fn build(self) -> Snapshot {
        self.snapshot
    }
}

const SCENARIO: &str = r#"
bindings:
  - name: newsletter
    audience: {id: a1b2c3d4e5}
    marketing_list: {name: Newsletter subscribers, member_type: contact}
    prune_members: true
    max_removals: 1
    tags: {prune: true, exclude: ["internal-*"]}
    fields:
      map:
        merge_fields.NOTES: description
        merge_fields.COMPANY: {column: company, policy: fill_empty}
  - name: events
    audience: {id: f0e1d2c3b4}
    marketing_list: {name: Event leads, member_type: lead, create: true}
    lead_values: {subject: "Mailchimp sign-up: {{ merge_fields.FNAME }} <{{ email_address }}>"}
  - name: dynamic
    audience: {id: "0000000001"}
    marketing_list: {name: Dynamic list, member_type: contact}
  - name: accounts
    audience: {id: "0000000002"}
    marketing_list: {name: Key accounts, member_type: contact}
  - name: wrong-type
    audience: {id: "0000000003"}
    marketing_list: {name: Lead list, member_type: contact}
  - name: inactive
    audience: {id: "0000000004"}
    marketing_list: {name: Old list, member_type: contact}
  - name: missing
    audience: {id: "0000000005"}
    marketing_list: {name: Nowhere, member_type: contact}
"#;

/// The long notes value, changed by one word, for the inline diff.
const NOTES_OLD: &str =
    "Met at the spring conference in Lyon; interested in the enterprise plan and the API add-on.";
const NOTES_NEW: &str =
    "Met at the spring conference in Lyon; interested in the premium plan and the API add-on.";

/// The fixed scenario: every binding with its snapshot.
pub(crate) fn scenario() -> (Vec<Binding>, Names, Vec<Snapshot>) {
    use MemberStatus::{Archived, Cleaned, Subscribed, Unsubscribed};
    let (bindings, names) = bindings(SCENARIO);
    let id_col = names.contact_mailchimp_id_column.as_str();
    let st = names.subscriber_status_column.as_str();
    let (vip, customers, old_promo, internal) = (uuid(0x71), uuid(0x72), uuid(0x74), uuid(0x75));
    let newsletter = Builder::new(&bindings[0], &names, ("a1b2c3d4e5", "Newsletter"))
        .audience_record(uuid(0xa1), "News")
        .list(uuid(0x11), "Newsletter subscribers", 2, false, None)
        .tag(1, "VIP")
        .tag(2, "Customers 2025")
        .tag(3, "Webinar")
        .tag(5, "internal-test")
        .tag_record(vip, 1, "VIP")
        .tag_record(customers, 2, "Customers")
        .tag_record(old_promo, 4, "Old promo")
        .tag_record(internal, 5, "internal-test")
        // alice: new → create, add, link
        .member(
            "alice@example.com",
            Subscribed,
            &[
                ("merge_fields.FNAME", "Alice"),
                ("merge_fields.LNAME", "Archer"),
            ],
            &[1, 3],
        )
        // bob: fields changed, a long value, tag moved
        .member(
            "bob@example.com",
            Subscribed,
            &[
                ("merge_fields.FNAME", "Robert"),
                ("merge_fields.NOTES", NOTES_NEW),
                ("merge_fields.COMPANY", "Acme Inc"),
            ],
            &[2],
        )
        .record(
            uuid(0xb0b),
            &[
                ("emailaddress1", "bob@example.com"),
                (id_col, "c-bob"),
                ("firstname", "Bob"),
                ("description", NOTES_OLD),
                ("company", "Acme"),
                (st, "subscribed"),
            ],
            false,
            &[vip],
            true,
        )
        // carol: matched by e-mail (case, spaces), not on the list, company filled
        .member(
            "carol@example.com",
            Subscribed,
            &[("merge_fields.COMPANY", "Carol Co")],
            &[],
        )
        .record(
            uuid(0xca1),
            &[("emailaddress1", " Carol@Example.com "), (st, "subscribed")],
            false,
            &[],
            false,
        )
        // dave: unsubscribed → do-not-e-mail and removal
        .member("dave@example.com", Unsubscribed, &[], &[])
        .record(
            uuid(0xda7e),
            &[
                ("emailaddress1", "dave@example.com"),
                (id_col, "c-dave"),
                (st, "subscribed"),
            ],
            false,
            &[],
            true,
        )
        // erin: cleaned, already flagged → status change and removal
        .member("erin@example.com", Cleaned, &[], &[])
        .record(
            uuid(0xe1),
            &[
                ("emailaddress1", "erin@example.com"),
                (id_col, "c-erin"),
                (st, "subscribed"),
            ],
            true,
            &[],
            true,
        )
        // frank: archived → removal
        .member("frank@example.com", Archived, &[], &[])
        .record(
            uuid(0xf1),
            &[
                ("emailaddress1", "frank@example.com"),
                (id_col, "c-frank"),
                (st, "subscribed"),
            ],
            false,
            &[],
            true,
        )
        // gina: two records share her address → conflict
        .member("gina@example.com", Subscribed, &[], &[])
        .record(
            uuid(0x91),
            &[("emailaddress1", "gina@example.com")],
            false,
            &[],
            false,
        )
        .record(
            uuid(0x92),
            &[("emailaddress1", "GINA@example.com")],
            false,
            &[],
            false,
        )
        // an invalid address
        .member("not-an-email", Subscribed, &[], &[])
        // henry: two records store his Mailchimp id → conflict
        .member("henry@example.com", Subscribed, &[], &[])
        .record(
            uuid(0x81),
            &[("emailaddress1", "henry@example.com"), (id_col, "c-henry")],
            false,
            &[],
            true,
        )
        .record(
            uuid(0x82),
            &[("emailaddress1", "h.enry@example.com"), (id_col, "c-henry")],
            false,
            &[],
            false,
        )
        // ivy: flagged in the CRM, subscribed in Mailchimp → warning only
        .member("ivy@example.com", Subscribed, &[], &[])
        .record(
            uuid(0x1a),
            &[
                ("emailaddress1", "ivy@example.com"),
                (id_col, "c-ivy"),
                (st, "subscribed"),
            ],
            true,
            &[],
            true,
        )
        // walter: added by a CRM user → unmanaged, kept
        .record(
            uuid(0x3a),
            &[("emailaddress1", "walter@example.com")],
            false,
            &[],
            true,
        )
        // a managed member whose Mailchimp member was deleted → left the audience
        .record(
            uuid(0x60),
            &[("emailaddress1", "gone@example.com"), (id_col, "c-gone")],
            false,
            &[],
            true,
        )
        .build();
    let events = Builder::new(&bindings[1], &names, ("f0e1d2c3b4", "Events"))
        .tag(9, "Expo")
        .member(
            "jane@example.com",
            Subscribed,
            &[
                ("merge_fields.FNAME", "Jane"),
                ("merge_fields.LNAME", "Doe"),
            ],
            &[9],
        )
        .build();
    let error_binding = |i: usize, aud: &str, code: u8, dynamic: bool, statecode: i32| {
        let mut b = Builder::new(&bindings[i], &names, (aud, "Other"));
        if code > 0 {
            b = b.list(
                uuid(0x1000 + i as u128),
                &format!("list {i}"),
                code,
                dynamic,
                None,
            );
            if let Some(l) = b.snapshot.crm.list.as_mut() {
                l.statecode = statecode;
            }
        }
        b.member("x@example.com", Subscribed, &[], &[]).build()
    };
    let snapshots = vec![
        newsletter,
        events,
        error_binding(2, "0000000001", 2, true, 0),
        error_binding(3, "0000000002", 1, false, 0),
        error_binding(4, "0000000003", 4, false, 0),
        error_binding(5, "0000000004", 2, false, 1),
        error_binding(6, "0000000005", 0, false, 0),
    ];
    (bindings, names, snapshots)
}

/// Fixed metadata for test plans.
pub(crate) fn meta() -> PlanMeta {
    PlanMeta {
        tool_version: "0.1.0".to_owned(),
        config_digest: "sha256:fixture".to_owned(),
        created_at: "2026-03-01T12:00:00Z".to_owned(),
    }
}

/// The fixed scenario's plan.
pub(crate) fn scenario_plan() -> Plan {
    let (bindings, names, snapshots) = scenario();
    plan_of(&bindings, &names, &snapshots)
}

/// The plan of these bindings and their snapshots, with the fixed metadata.
pub(crate) fn plan_of(bindings: &[Binding], names: &Names, snapshots: &[Snapshot]) -> Plan {
    let plans: Vec<BindingPlan> = bindings
        .iter()
        .zip(snapshots)
        .map(|(b, s)| super::compute(b, names, s))
        .collect();
    Plan::new(meta(), plans)
}
