// Drive every emulated Mailchimp endpoint through the Prism proxy and fail on any violation:
// an `sl-violations` header, a 422 (request not valid for the spec) or a 5xx (with --errors,
// Prism answers 500 when the upstream response breaks the spec), or an unexpected status.
//
// usage: node drive.mjs PROXY_URL API_KEY LIST_ID
import { createHash } from 'node:crypto';

const [proxy, key, list] = process.argv.slice(2);
if (!proxy || !key || !list) {
  console.error('usage: node drive.mjs PROXY_URL API_KEY LIST_ID');
  process.exit(64);
}
const auth = 'Basic ' + Buffer.from(`conformance:${key}`).toString('base64');
const md5 = (email) => createHash('md5').update(email.toLowerCase()).digest('hex');
let calls = 0;
let failures = 0;

async function call(method, path, { body, expect, headers = {} } = {}) {
  const init = { method, headers: { Authorization: auth, ...headers } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(proxy + path, init);
  const text = await res.text();
  calls += 1;
  const problems = [];
  const violations = res.headers.get('sl-violations');
  if (violations) problems.push(`sl-violations: ${violations}`);
  if (res.status === 422 || res.status >= 500) problems.push(`status ${res.status}: ${text.slice(0, 800)}`);
  if (expect !== undefined && res.status !== expect) problems.push(`expected ${expect}, got ${res.status}: ${text.slice(0, 300)}`);
  if (problems.length) {
    failures += 1;
    console.error(`FAIL ${method} ${path}\n     ${problems.join('\n     ')}`);
  } else {
    console.log(`ok   ${res.status} ${method} ${path}`);
  }
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

const L = `/lists/${list}`;
const since = encodeURIComponent('2020-01-01T00:00:00+00:00');

// Account, health, audiences.
await call('GET', '/ping', { expect: 200 });
await call('GET', '/', { expect: 200 });
await call('GET', '/lists', { expect: 200 });
await call('GET', '/lists?count=1000&offset=0&include_total_contacts=true&sort_field=date_created&sort_dir=DESC', { expect: 200 });
await call('GET', `${L}`, { expect: 200 });
await call('GET', `${L}?include_total_contacts=true&fields=id,name,stats.member_count,stats.total_contacts`, { expect: 200 });

// Members: paging, projection, filters.
await call('GET', `${L}/members`, { expect: 200 });
await call('GET', `${L}/members?count=1000&offset=0`, { expect: 200 });
await call('GET', `${L}/members?count=2&offset=1&exclude_fields=members._links,_links`, { expect: 200 });
await call('GET', `${L}/members?status=subscribed&since_last_changed=${since}&sort_field=last_changed&sort_dir=ASC&count=1000`, { expect: 200 });
await call('GET', `${L}/members?before_last_changed=${since}&sort_field=timestamp_opt&sort_dir=DESC`, { expect: 200 });
await call('GET', `${L}/members?sort_field=timestamp_signup&sort_dir=ASC&count=1000&offset=0`, { expect: 200 });
await call('GET', `${L}/members/${md5('ada@example.com')}?fields=id,email_address,contact_id,status,last_changed,timestamp_signup,merge_fields`, { expect: 200 });
for (const status of ['unsubscribed', 'cleaned', 'pending', 'archived']) {
  await call('GET', `${L}/members?status=${status}`, { expect: 200 });
}
await call('GET', `${L}/members/${md5('many.tags@example.com')}`, { expect: 200 });
await call('GET', `${L}/members/${md5('many.tags@example.com')}/tags?count=1000&offset=0`, { expect: 200 });
await call('GET', `${L}/members/${md5('ada@example.com')}?fields=id,email_address,merge_fields,tags`, { expect: 200 });

// Member writes.
const created = await call('POST', `${L}/members`, {
  body: { email_address: 'New.Person@example.com', status: 'subscribed', merge_fields: { FNAME: 'New', LNAME: 'Person' }, tags: ['Conformance'] },
  expect: 200,
});
const hash = created?.id ?? md5('new.person@example.com');
await call('GET', `${L}/members/${hash}`, { expect: 200 });
await call('PATCH', `${L}/members/${hash}`, { body: { merge_fields: { FNAME: 'Newer' }, language: 'de' }, expect: 200 });
await call('PUT', `${L}/members/${hash}`, { body: { email_address: 'new.person@example.com', status_if_new: 'subscribed', vip: true }, expect: 200 });
await call('PUT', `${L}/members/${md5('put.person@example.com')}?skip_merge_validation=true`, {
  body: { email_address: 'put.person@example.com', status_if_new: 'pending' },
  expect: 200,
});
await call('POST', `${L}/members/${hash}/tags`, {
  body: { tags: [{ name: 'Conformance', status: 'inactive' }, { name: 'Fresh', status: 'active' }], is_syncing: true },
  expect: 204,
});
await call('GET', `${L}/members/${hash}/tags`, { expect: 200 });
await call('POST', `${L}/members`, { body: { email_address: 'new.person@example.com', status: 'subscribed' }, expect: 400 });
await call('DELETE', `${L}/members/${hash}`, { expect: 204 });
await call('GET', `${L}/members/${hash}`, { expect: 200 });
await call('POST', `${L}/members/${hash}/actions/delete-permanent`, { expect: 204 });
await call('POST', `${L}/members`, { body: { email_address: 'new.person@example.com', status: 'subscribed' }, expect: 400 });
await call('PATCH', `${L}/members/${md5('gone@example.com')}`, { body: { status: 'subscribed' }, expect: 400 });

// Tags are static segments.
await call('GET', `${L}/segments`, { expect: 200 });
await call('GET', `${L}/segments?type=static&count=1000&offset=0&include_unsubscribed=true`, { expect: 200 });
const seg = await call('POST', `${L}/segments`, { body: { name: 'Conformance tag', static_segment: ['ada@example.com'] }, expect: 200 });
const S = `${L}/segments/${seg?.id ?? 0}`;
await call('GET', S, { expect: 200 });
await call('PATCH', S, { body: { name: 'Conformance tag renamed' }, expect: 200 });
await call('POST', S, { body: { members_to_add: ['grace@example.com', 'stranger@example.com'], members_to_remove: ['ada@example.com'] }, expect: 200 });
await call('GET', `${S}/members?count=1000&include_cleaned=true&include_unsubscribed=true`, { expect: 200 });
await call('POST', `${S}/members`, { body: { email_address: 'ada@example.com' }, expect: 200 });
await call('DELETE', `${S}/members/${md5('ada@example.com')}`, { expect: 204 });
await call('DELETE', S, { expect: 204 });
await call('GET', `${L}/tag-search?name=Int`, { expect: 200 });
await call('GET', `${L}/tag-search`, { expect: 200 });

// Merge fields.
const fields = await call('GET', `${L}/merge-fields?count=1000`, { expect: 200 });
await call('GET', `${L}/merge-fields?type=text&required=false`, { expect: 200 });
await call('GET', `${L}/merge-fields/${fields?.merge_fields?.[0]?.merge_id ?? 1}`, { expect: 200 });

// Errors are problem documents.
await call('GET', '/lists/0000000000', { expect: 404 });
await call('GET', `${L}/members/${md5('nobody@example.com')}`, { expect: 404 });
await call('GET', `${L}/segments/999999`, { expect: 404 });
await call('GET', '/ping', { headers: { 'X-Trigger-Error': 'ResourceNotFound' }, expect: 404 });
await call('GET', '/ping', { headers: { 'X-Trigger-Error': 'InvalidResource' }, expect: 400 });

console.log(`${calls} calls, ${failures} failed`);
process.exit(failures === 0 ? 0 : 1);
