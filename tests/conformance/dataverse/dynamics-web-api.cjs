// Drives the real npm client `dynamics-web-api` (v2) against the sandbox's Dataverse emulator:
// token from the emulated Entra ID endpoint, WhoAmI, metadata reads, creates with chosen ids,
// paging (retrieveAll with maxPageSize), a filtered count, $batch with a change set (Content-ID
// references), a failing change set that must leave nothing behind, continue-on-error, $ref
// associate/disassociate on the tool's tag relationship, AddMemberList, and CreateMultiple.
// Exits non-zero on the first failure.
//
// Environment: DATAVERSE_URL, DATAVERSE_TOKEN_URL, DATAVERSE_CLIENT_ID, DATAVERSE_CLIENT_SECRET,
// DV_LIST_ID (a static contact list of the seed). NODE_PATH must reach dynamics-web-api.
"use strict";

const assert = require("node:assert/strict");
const { randomUUID } = require("node:crypto");
const { DynamicsWebApi } = require("dynamics-web-api");

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`missing environment variable ${name}`);
  return value;
};

let tokenRequests = 0;
async function fetchToken() {
  tokenRequests += 1;
  const body = new URLSearchParams({
    grant_type: "client_credentials",
    client_id: env("DATAVERSE_CLIENT_ID"),
    client_secret: env("DATAVERSE_CLIENT_SECRET"),
    scope: `${env("DATAVERSE_URL")}/.default`,
  });
  const resp = await fetch(env("DATAVERSE_TOKEN_URL"), { method: "POST", body });
  const json = await resp.json();
  if (!resp.ok) throw new Error(`token endpoint answered ${resp.status}: ${json.error}`);
  assert.equal(json.token_type, "Bearer");
  assert.ok(json.expires_in > 0);
  return json.access_token;
}

async function main() {
  const api = new DynamicsWebApi({
    serverUrl: `${env("DATAVERSE_URL")}/`,
    dataApi: { version: "9.2" },
    onTokenRefresh: fetchToken,
  });
  const step = (name) => console.log(`dynamics-web-api: ${name}`);

  step("WhoAmI");
  const who = await api.callFunction({ name: "WhoAmI" });
  assert.match(who.UserId, /^[0-9a-f-]{36}$/);

  step("metadata");
  const contactDef = await api.retrieveEntity({ key: "LogicalName='contact'", select: ["EntitySetName", "PrimaryIdAttribute"] });
  assert.equal(contactDef.EntitySetName, "contacts");
  assert.equal(contactDef.PrimaryIdAttribute, "contactid");
  const attrs = await api.retrieveAttributes({ entityKey: "LogicalName='contact'", select: ["LogicalName"] });
  assert.ok(attrs.value.some((a) => a.LogicalName === "emailaddress1"));
  const rel = await api.retrieveRelationship({ key: "SchemaName='mcsync_tag_contact'" });
  assert.equal(rel.Entity1LogicalName, "mcsync_tag");
  const filters = await api.retrieveMultiple({
    collection: "sdkmessagefilters",
    select: ["sdkmessagefilterid"],
    filter: "sdkmessageid/name eq 'CreateMultiple' and primaryobjecttypecode eq 'contact'",
  });
  assert.equal(filters.value.length, 1);

  step("create 120 contacts with chosen ids");
  const ids = [];
  for (let i = 0; i < 120; i += 1) {
    const id = randomUUID();
    ids.push(id);
    const created = await api.create({
      collection: "contacts",
      data: { contactid: id, firstname: `Conf${i}`, lastname: "Node", emailaddress1: `conf${i}+node@example.com` },
    });
    assert.equal(String(created).toLowerCase(), id);
  }
  const rep = await api.create({ collection: "contacts", data: { firstname: "Rep", lastname: "Node" }, returnRepresentation: true, select: ["fullname"] });
  assert.equal(rep.fullname, "Rep Node");
  let duplicate = null;
  try {
    await api.create({ collection: "contacts", data: { contactid: ids[0], firstname: "Again" } });
  } catch (err) {
    duplicate = err;
  }
  assert.ok(duplicate, "a create with an existing id fails");
  assert.equal(duplicate.status, 412);

  step("paging with retrieveAll(maxPageSize 25)");
  const all = await api.retrieveAll({ collection: "contacts", select: ["fullname", "emailaddress1"], filter: "lastname eq 'Node'", maxPageSize: 25 });
  assert.equal(all.value.length, 121);
  const count = await api.count({ collection: "contacts", filter: "startswith(emailaddress1,'conf1')" });
  assert.ok(count >= 31, `count ${count}`);

  step("$batch with a change set and Content-ID references");
  const batchId = randomUUID();
  api.startBatch();
  api.create({ collection: "contacts", data: { contactid: batchId, firstname: "Batch", lastname: "One" }, contentId: "1" });
  api.update({ contentId: "$1", data: { lastname: "Updated" } });
  api.retrieveMultiple({ collection: "contacts", select: ["contactid"], filter: "lastname eq 'Node'", top: 2 });
  const results = await api.executeBatch();
  assert.equal(results.length, 3);
  const batched = await api.retrieve({ collection: "contacts", key: batchId, select: ["fullname"] });
  assert.equal(batched.fullname, "Batch Updated");

  step("a failing change set leaves nothing behind");
  const doomed = randomUUID();
  api.startBatch();
  api.create({ collection: "contacts", data: { contactid: doomed, firstname: "Doomed" } });
  api.create({ collection: "contacts", data: { nosuchcolumn: "x" } });
  let batchFailed = false;
  try {
    await api.executeBatch();
  } catch (err) {
    batchFailed = true;
  }
  assert.ok(batchFailed, "the batch reports the failure");
  const left = await api.retrieveMultiple({ collection: "contacts", select: ["contactid"], filter: `contactid eq ${doomed}` });
  assert.equal(left.value.length, 0, "the change set rolled back");

  step("continue-on-error");
  api.startBatch();
  api.create({ collection: "contacts", data: { firstname: "Kept" }, inChangeSet: false });
  api.create({ collection: "contacts", data: { nosuchcolumn: "x" }, inChangeSet: false });
  api.create({ collection: "contacts", data: { firstname: "KeptToo" }, inChangeSet: false });
  const mixed = await api.executeBatch({ continueOnError: true });
  assert.equal(mixed.length, 3);
  assert.ok(mixed[1] instanceof Error || (mixed[1] && mixed[1].status === 400), "the failed part is reported");
  const kept = await api.retrieveMultiple({ collection: "contacts", select: ["contactid"], filter: "firstname eq 'Kept' or firstname eq 'KeptToo'" });
  assert.equal(kept.value.length, 2);

  step("$ref associate and disassociate on mcsync_tag_contact");
  const tagId = randomUUID();
  await api.create({ collection: "mcsync_tags", data: { mcsync_tagid: tagId, mcsync_name: "VIP", mcsync_mailchimptagid: "101" } });
  for (const id of ids.slice(0, 3)) {
    await api.associate({ collection: "mcsync_tags", primaryKey: tagId, relationshipName: "mcsync_tag_contact", relatedCollection: "contacts", relatedKey: id });
  }
  const tagged = await api.retrieveMultiple({ collection: "contacts", select: ["contactid"], filter: `mcsync_tag_contact/any(t:t/mcsync_tagid eq ${tagId})` });
  assert.equal(tagged.value.length, 3);
  await api.disassociate({ collection: "mcsync_tags", primaryKey: tagId, relationshipName: "mcsync_tag_contact", relatedKey: ids[0] });
  const members = await api.retrieveMultiple({ collection: "mcsync_tags", key: tagId, navigationProperty: "mcsync_tag_contact", select: ["contactid"] });
  assert.equal(members.value.length, 2);

  step("AddMemberList and list membership");
  const listId = env("DV_LIST_ID");
  const added = await api.callAction({ collection: "lists", key: listId, actionName: "Microsoft.Dynamics.CRM.AddMemberList", action: { EntityId: ids[1] } });
  assert.match(added.Id, /^[0-9a-f-]{36}$/);
  const listMembers = await api.retrieveMultiple({ collection: "listmembers", select: ["_entityid_value"], filter: `_listid_value eq ${listId}` });
  assert.ok(listMembers.value.some((m) => m._entityid_value === ids[1]));

  step("CreateMultiple");
  const targets = Array.from({ length: 200 }, (_, i) => ({ "@odata.type": "Microsoft.Dynamics.CRM.contact", firstname: `Bulk${i}`, lastname: "Multiple" }));
  const bulk = await api.callAction({ collection: "contacts", actionName: "Microsoft.Dynamics.CRM.CreateMultiple", action: { Targets: targets } });
  assert.equal(bulk.Ids.length, 200);

  assert.ok(tokenRequests >= 1);
  console.log("dynamics-web-api: all checks passed");
}

main().catch((err) => {
  console.error("dynamics-web-api conformance FAILED:", err && (err.stack || err.message || err));
  if (err && err.status) console.error("status", err.status, JSON.stringify(err));
  process.exit(1);
});
