//! The CSDL `$metadata` document, built from the same metadata as the JSON answers.

use crate::dataverse::meta::AttrType;
use crate::dataverse::routes::ApiResponse;
use crate::dataverse::store::Store;

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The CSDL `$metadata` document for the current tables (a subset of the real one: entity
/// types with keys, properties and navigation properties, the container, and the actions the
/// emulator serves).
#[must_use]
pub fn csdl(store: &Store) -> ApiResponse {
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><edmx:Edmx Version=\"4.0\" xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\"><edmx:DataServices><Schema Namespace=\"Microsoft.Dynamics.CRM\" Alias=\"mscrm\" xmlns=\"http://docs.oasis-open.org/odata/ns/edm\"><EntityType Name=\"crmbaseentity\" Abstract=\"true\"/>",
    );
    for t in store.tables() {
        let m = &t.meta;
        xml.push_str(&format!(
            "<EntityType Name=\"{}\" BaseType=\"mscrm.crmbaseentity\"><Key><PropertyRef Name=\"{}\"/></Key>",
            xml_escape(&m.logical_name),
            xml_escape(&m.primary_id)
        ));
        for a in &m.attributes {
            let name = if matches!(a.kind, AttrType::Lookup(_)) {
                format!("_{}_value", a.logical_name)
            } else {
                a.logical_name.clone()
            };
            xml.push_str(&format!(
                "<Property Name=\"{}\" Type=\"{}\"/>",
                xml_escape(&name),
                a.kind.edm()
            ));
        }
        for rel in store
            .one_to_many
            .iter()
            .filter(|r| r.referencing_entity == m.logical_name)
        {
            xml.push_str(&format!(
                "<NavigationProperty Name=\"{}\" Type=\"mscrm.{}\" Partner=\"{}\"><ReferentialConstraint Property=\"_{}_value\" ReferencedProperty=\"{}\"/></NavigationProperty>",
                xml_escape(&rel.referencing_nav),
                xml_escape(&rel.referenced_entity),
                xml_escape(&rel.referenced_nav),
                xml_escape(&rel.referencing_attribute),
                xml_escape(&rel.referenced_attribute)
            ));
        }
        for rel in store
            .one_to_many
            .iter()
            .filter(|r| r.referenced_entity == m.logical_name)
        {
            xml.push_str(&format!(
                "<NavigationProperty Name=\"{}\" Type=\"Collection(mscrm.{})\" Partner=\"{}\"/>",
                xml_escape(&rel.referenced_nav),
                xml_escape(&rel.referencing_entity),
                xml_escape(&rel.referencing_nav)
            ));
        }
        for rel in &store.many_to_many {
            if rel.entity1 == m.logical_name {
                xml.push_str(&format!(
                    "<NavigationProperty Name=\"{}\" Type=\"Collection(mscrm.{})\" Partner=\"{}\"/>",
                    xml_escape(&rel.entity1_nav),
                    xml_escape(&rel.entity2),
                    xml_escape(&rel.entity2_nav)
                ));
            } else if rel.entity2 == m.logical_name {
                xml.push_str(&format!(
                    "<NavigationProperty Name=\"{}\" Type=\"Collection(mscrm.{})\" Partner=\"{}\"/>",
                    xml_escape(&rel.entity2_nav),
                    xml_escape(&rel.entity1),
                    xml_escape(&rel.entity1_nav)
                ));
            }
        }
        xml.push_str("</EntityType>");
    }
    xml.push_str("<ComplexType Name=\"WhoAmIResponse\"><Property Name=\"BusinessUnitId\" Type=\"Edm.Guid\" Nullable=\"false\"/><Property Name=\"UserId\" Type=\"Edm.Guid\" Nullable=\"false\"/><Property Name=\"OrganizationId\" Type=\"Edm.Guid\" Nullable=\"false\"/></ComplexType>");
    xml.push_str("<ComplexType Name=\"AddMemberListResponse\"><Property Name=\"Id\" Type=\"Edm.Guid\" Nullable=\"false\"/></ComplexType>");
    xml.push_str("<ComplexType Name=\"CreateMultipleResponse\"><Property Name=\"Ids\" Type=\"Collection(Edm.Guid)\" Nullable=\"false\"/></ComplexType>");
    xml.push_str("<Function Name=\"WhoAmI\"><ReturnType Type=\"mscrm.WhoAmIResponse\" Nullable=\"false\"/></Function>");
    xml.push_str("<Action Name=\"AddMemberList\" IsBound=\"true\"><Parameter Name=\"entityset\" Type=\"mscrm.list\" Nullable=\"false\"/><Parameter Name=\"EntityId\" Type=\"Edm.Guid\" Nullable=\"false\"/><ReturnType Type=\"mscrm.AddMemberListResponse\" Nullable=\"false\"/></Action>");
    xml.push_str("<Action Name=\"RemoveMemberList\" IsBound=\"true\"><Parameter Name=\"entityset\" Type=\"mscrm.list\" Nullable=\"false\"/><Parameter Name=\"EntityId\" Type=\"Edm.Guid\" Nullable=\"false\"/></Action>");
    xml.push_str("<Action Name=\"AddListMembersList\"><Parameter Name=\"List\" Type=\"mscrm.list\" Nullable=\"false\"/><Parameter Name=\"Members\" Type=\"Collection(mscrm.crmbaseentity)\" Nullable=\"false\"/></Action>");
    for action in ["CreateMultiple", "UpdateMultiple", "UpsertMultiple"] {
        xml.push_str(&format!(
            "<Action Name=\"{action}\" IsBound=\"true\"><Parameter Name=\"entityset\" Type=\"Collection(mscrm.crmbaseentity)\" Nullable=\"false\"/><Parameter Name=\"Targets\" Type=\"Collection(mscrm.crmbaseentity)\" Nullable=\"false\"/>{}</Action>",
            if action == "CreateMultiple" { "<ReturnType Type=\"mscrm.CreateMultipleResponse\" Nullable=\"false\"/>" } else { "" }
        ));
    }
    xml.push_str("<EntityContainer Name=\"System\">");
    for t in store.tables() {
        xml.push_str(&format!(
            "<EntitySet Name=\"{}\" EntityType=\"Microsoft.Dynamics.CRM.{}\"/>",
            xml_escape(&t.meta.entity_set),
            xml_escape(&t.meta.logical_name)
        ));
    }
    xml.push_str("<FunctionImport Name=\"WhoAmI\" Function=\"Microsoft.Dynamics.CRM.WhoAmI\"/><ActionImport Name=\"AddListMembersList\" Action=\"Microsoft.Dynamics.CRM.AddListMembersList\"/></EntityContainer></Schema></edmx:DataServices></edmx:Edmx>");
    ApiResponse {
        status: 200,
        headers: Vec::new(),
        body: Some(("application/xml".to_owned(), xml.into_bytes())),
        ops: 1,
    }
}
