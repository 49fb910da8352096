"""Drive the real PyPI client `dataverse-api` (1.4.x) against the sandbox's Dataverse emulator.

The client reads table metadata first (EntityDefinitions, Keys, sdkmessagefilters with
$expand, relationships), then: creates (individual, CreateMultiple, $batch), paged reads
(page_size), upserts by primary id and by an alternate key (the key made through the metadata
API), a $batch of $ref associations on the tool's Tag <-> Contact relationship, a hand-written
$batch with a change set that fails in the middle (nothing may stay), and deletes.
Exits non-zero on the first failure.

Environment: DATAVERSE_URL, DATAVERSE_TOKEN_URL, DATAVERSE_CLIENT_ID, DATAVERSE_CLIENT_SECRET.
"""

import os
import sys
import uuid

import requests
from dataverse_api import DataverseClient
from dataverse_api.utils.batching import BatchCommand, RequestMethod


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"missing environment variable {name}")
    return value


def step(name: str) -> None:
    print(f"dataverse-api: {name}", flush=True)


def token(url: str) -> str:
    resp = requests.post(
        env("DATAVERSE_TOKEN_URL"),
        data={
            "grant_type": "client_credentials",
            "client_id": env("DATAVERSE_CLIENT_ID"),
            "client_secret": env("DATAVERSE_CLIENT_SECRET"),
            "scope": f"{url}/.default",
        },
        timeout=30,
    )
    body = resp.json()
    assert resp.status_code == 200, body
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    return body["access_token"]


def main() -> None:
    url = env("DATAVERSE_URL")
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token(url)}"
    client = DataverseClient(session=session, environment_url=f"{url}/")
    api = f"{url}/api/data/v9.2/"

    step("entity metadata")
    contact = client.entity("contact")
    assert contact.entity_set_name == "contacts"
    assert contact.primary_id_attr == "contactid"
    assert contact.supports_create_multiple and contact.supports_update_multiple
    listmember = client.entity("listmember")
    assert not listmember.supports_create_multiple, "listmember has no bulk messages"
    tag = client.entity("mcsync_tag")
    assert tag.entity_set_name == "mcsync_tags"
    definition = client.get_entity_definition("mcsync_tag")
    assert definition is not None
    rel = client.get_relationship_definition("mcsync_tag_contact")
    assert rel is not None

    step("create: individual, CreateMultiple, $batch")
    ids = [str(uuid.uuid4()) for _ in range(10)]
    rows = [{"contactid": i, "firstname": f"Py{n}", "lastname": "Py", "emailaddress1": f"py{n}@example.com"} for n, i in enumerate(ids)]
    responses = contact.create(rows)
    assert all(r.status_code == 204 for r in responses)
    multiple = [{"firstname": f"Multi{n}", "lastname": "Py"} for n in range(300)]
    responses = contact.create(multiple, mode="multiple", batch_size=150)
    assert len(responses) == 2 and all(r.status_code == 200 for r in responses)
    assert sum(len(r.json()["Ids"]) for r in responses) == 300
    batched = [{"firstname": f"Batch{n}", "lastname": "Py"} for n in range(250)]
    responses = contact.create(batched, mode="batch", batch_size=100)
    assert len(responses) == 3
    for resp in responses:
        assert resp.status_code == 200, resp.text[:500]
        assert "HTTP/1.1 4" not in resp.text, resp.text[:500]

    step("paged read (page_size 100)")
    pages = contact.read(select=["fullname", "emailaddress1"], filter="lastname eq 'Py'", page_size=100, return_responses=True)
    assert len(pages) == 6, len(pages)
    rows_read = contact.read(select=["fullname"], filter="lastname eq 'Py'", page_size=100)
    assert len(rows_read) == 560, len(rows_read)
    expanded = client.entity("sdkmessagefilter").read(
        select=["sdkmessagefilterid"], expand="sdkmessageid($select=name)", filter="primaryobjecttypecode eq 'contact'"
    )
    assert any(r["sdkmessageid"]["name"] == "UpsertMultiple" for r in expanded)

    step("upsert by primary id and by an alternate key")
    contact.upsert([{"contactid": ids[0], "jobtitle": "Upserted"}])
    new_id = str(uuid.uuid4())
    contact.upsert([{"contactid": new_id, "firstname": "Fresh", "lastname": "Py"}], mode="batch")
    got = session.get(f"{api}contacts({new_id})?$select=fullname,jobtitle", timeout=30).json()
    assert got["fullname"] == "Fresh Py", got
    label = {"LocalizedLabels": [{"Label": "Mailchimp id", "LanguageCode": 1033}]}
    resp = session.post(
        f"{api}EntityDefinitions(LogicalName='contact')/Keys",
        json={
            "@odata.type": "Microsoft.Dynamics.CRM.EntityKeyMetadata",
            "SchemaName": "mcsync_mailchimpkey",
            "DisplayName": label,
            "KeyAttributes": ["mcsync_mailchimpcontactid"],
        },
        timeout=30,
    )
    assert resp.status_code == 204, resp.text
    contact.update_schema("altkeys")
    assert "mcsync_mailchimpkey" in contact.alternate_keys
    contact.upsert(
        [{"mcsync_mailchimpcontactid": "mc-1", "firstname": "Keyed", "lastname": "Py"}], altkey_name="mcsync_mailchimpkey"
    )
    contact.upsert(
        [{"mcsync_mailchimpcontactid": "mc-1", "jobtitle": "Second"}], altkey_name="mcsync_mailchimpkey"
    )
    keyed = contact.read(select=["jobtitle", "firstname"], filter="mcsync_mailchimpcontactid eq 'mc-1'")
    assert len(keyed) == 1 and keyed[0]["jobtitle"] == "Second", keyed

    step("$batch of $ref associations on mcsync_tag_contact")
    tag_id = str(uuid.uuid4())
    tag.create([{"mcsync_tagid": tag_id, "mcsync_name": "Python", "mcsync_mailchimptagid": "7"}])
    commands = [
        BatchCommand(
            url=f"mcsync_tags({tag_id})/mcsync_tag_contact/$ref",
            method=RequestMethod.POST,
            data={"@odata.id": f"{api}contacts({i})"},
        )
        for i in ids[:5]
    ]
    responses = client.submit_batch(commands)
    assert all(r.status_code == 200 and "HTTP/1.1 4" not in r.text for r in responses), [r.text[:300] for r in responses]
    linked = contact.read(select=["contactid"], filter=f"mcsync_tag_contact/any(t:t/mcsync_tagid eq {tag_id})")
    assert len(linked) == 5, linked

    step("a change set failing in the middle leaves nothing behind")
    doomed = str(uuid.uuid4())
    body = (
        "--batch_py\r\nContent-Type: multipart/mixed; boundary=changeset_py\r\n\r\n"
        "--changeset_py\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\n"
        f"POST {api}contacts HTTP/1.1\r\nContent-Type: application/json; type=entry\r\n\r\n"
        f'{{"contactid":"{doomed}","firstname":"Doomed"}}\r\n'
        "--changeset_py\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 2\r\n\r\n"
        f"POST {api}mcsync_tags({tag_id})/mcsync_tag_contact/$ref HTTP/1.1\r\nContent-Type: application/json\r\n\r\n"
        '{"@odata.id":"$1"}\r\n'
        "--changeset_py\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 3\r\n\r\n"
        f"POST {api}contacts HTTP/1.1\r\nContent-Type: application/json; type=entry\r\n\r\n"
        '{"nosuchcolumn":1}\r\n'
        "--changeset_py--\r\n--batch_py--\r\n"
    )
    resp = session.post(
        f"{api}$batch", data=body.encode(), headers={"Content-Type": "multipart/mixed; boundary=batch_py"}, timeout=30
    )
    assert resp.status_code == 400, resp.status_code
    assert not contact.read(select=["contactid"], filter=f"contactid eq {doomed}"), "rolled back"
    assert len(contact.read(select=["contactid"], filter=f"mcsync_tag_contact/any(t:t/mcsync_tagid eq {tag_id})")) == 5

    step("delete (individual and $batch)")
    contact.delete(ids=[ids[9]])
    contact.delete(ids=ids[6:9], mode="batch")
    contact.delete(filter="firstname eq 'Py5'", mode="batch")
    remaining = contact.read(select=["contactid"], filter="startswith(firstname,'Py')")
    assert len(remaining) == 5, len(remaining)
    print("dataverse-api: all checks passed", flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as err:  # noqa: BLE001 - report any failure and exit non-zero
        response = getattr(err, "response", None)
        detail = f" ({response.status_code}: {response.text[:500]})" if response is not None else ""
        print(f"dataverse-api conformance FAILED: {err!r}{detail}", file=sys.stderr)
        sys.exit(1)
