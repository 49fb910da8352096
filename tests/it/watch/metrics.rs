//! `/metrics`: a strict parser of the Prometheus text exposition format (0.0.4) and the tests that read the watch server's metrics with it.

use super::*;

// -- a strict parser of the Prometheus text exposition format (0.0.4)

#[derive(Debug, Default)]
pub(super) struct Family {
    pub(super) kind: String,
    pub(super) samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text
            .parse::<f64>()
            .map_err(|_| format!("bad value `{text}`")),
    }
}

/// Parse `{a="x",b="y"}` (after the name); returns the labels and the rest of the line.
fn parse_labels(text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let Some(mut rest) = text.strip_prefix('{') else {
        return Ok((labels, text));
    };
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = rest.find('=').ok_or("label without `=`")?;
        let name = &rest[..eq];
        if !is_label_name(name) {
            return Err(format!("bad label name `{name}`"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((i, '"')) => break i,
                Some((_, '\n')) | None => return Err("unterminated label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("label `{name}` twice"));
        }
        rest = &rest[end + 1..];
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err(format!("expected `,` or `}}` at `{rest}`"));
        }
    }
}

fn family_of(sample: &str, families: &BTreeMap<String, Family>) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = sample.strip_suffix(suffix) {
            if families.get(base).is_some_and(|f| f.kind == "histogram") {
                return base.to_owned();
            }
        }
    }
    sample.to_owned()
}

pub(super) fn parse_prometheus(text: &str) -> Result<BTreeMap<String, Family>, String> {
    if !text.ends_with('\n') {
        return Err("the exposition must end with a newline".into());
    }
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut helped = BTreeSet::new();
    let mut finished = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut series = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let at = |msg: String| format!("line {}: {msg}: `{line}`", n + 1);
        if line.is_empty() {
            return Err(at("empty line".into()));
        }
        let switch_to = |name: &str,
                         current: &mut Option<String>,
                         finished: &mut BTreeSet<String>|
         -> Result<(), String> {
            if current.as_deref() != Some(name) {
                if finished.contains(name) {
                    return Err(format!("family `{name}` is not contiguous"));
                }
                if let Some(previous) = current.take() {
                    finished.insert(previous);
                }
                *current = Some(name.to_owned());
            }
            Ok(())
        };
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            if !is_metric_name(name) || !helped.insert(name.to_owned()) {
                return Err(at("bad or repeated HELP".into()));
            }
            if families.get(name).is_some_and(|f| !f.samples.is_empty()) {
                return Err(at("HELP after samples".into()));
            }
            switch_to(name, &mut current, &mut finished).map_err(at)?;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap_or_default();
            let kind = parts.next().unwrap_or_default();
            if parts.next().is_some()
                || !is_metric_name(name)
                || !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind)
            {
                return Err(at("bad TYPE".into()));
            }
            switch_to(name, &mut current, &mut finished).map_err(at)?;
            let family = families.entry(name.to_owned()).or_default();
            if !family.kind.is_empty() || !family.samples.is_empty() {
                return Err(at("TYPE repeated or after samples".into()));
            }
            family.kind = kind.to_owned();
        } else if line.starts_with('#') {
            continue;
        } else {
            let end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
            let name = &line[..end];
            if !is_metric_name(name) {
                return Err(at("bad metric name".into()));
            }
            let (labels, rest) = parse_labels(&line[end..]).map_err(at)?;
            let rest = rest
                .strip_prefix(' ')
                .ok_or_else(|| at("no space before value".into()))?;
            let mut parts = rest.split(' ');
            let value = parse_value(parts.next().unwrap_or_default()).map_err(at)?;
            if let Some(ts) = parts.next() {
                ts.parse::<i64>().map_err(|_| at("bad timestamp".into()))?;
            }
            if parts.next().is_some() {
                return Err(at("trailing text".into()));
            }
            let family_name = family_of(name, &families);
            switch_to(&family_name, &mut current, &mut finished).map_err(at)?;
            let family = families.entry(family_name.clone()).or_default();
            if family.kind == "counter" && (value.is_nan() || value < 0.0) {
                return Err(at("negative counter".into()));
            }
            if !series.insert(format!("{name}{labels:?}")) {
                return Err(at("duplicate series".into()));
            }
            family.samples.push((name.to_owned(), labels, value));
        }
    }
    // Histograms: cumulative buckets, `+Inf` equal to `_count`.
    for (name, family) in &families {
        if family.kind != "histogram" {
            continue;
        }
        let mut by_series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        let mut counts = BTreeMap::new();
        for (sample, labels, value) in &family.samples {
            let mut key = labels.clone();
            let le = key.remove("le");
            let key = format!("{key:?}");
            if sample.ends_with("_bucket") {
                let le = parse_value(&le.ok_or(format!("{name}: bucket without le"))?)?;
                by_series.entry(key).or_default().push((le, *value));
            } else if sample.ends_with("_count") {
                counts.insert(key, *value);
            }
        }
        for (key, buckets) in by_series {
            let cumulative = buckets
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1);
            let inf = buckets.last().filter(|b| b.0.is_infinite()).map(|b| b.1);
            if !cumulative || inf.is_none() || inf != counts.get(&key).copied() {
                return Err(format!(
                    "{name}{key}: buckets not cumulative up to +Inf = _count"
                ));
            }
        }
    }
    Ok(families)
}

pub(super) fn sample(
    families: &BTreeMap<String, Family>,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    families
        .values()
        .flat_map(|f| &f.samples)
        .find(|(n, l, _)| n == name && *l == want)
        .map(|s| s.2)
}

#[test]
fn the_test_parser_rejects_what_prometheus_rejects() {
    for bad in [
        "a 1",                                             // no final newline
        "a{b=\"x\"} one\n",                                // bad value
        "# TYPE a counter\na -1\n",                        // negative counter
        "a{1b=\"x\"} 1\n",                                 // bad label name
        "a{b=x} 1\n",                                      // unquoted value
        "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na 2\n", // not contiguous
        "a 1\na 1\n",                                      // duplicate series
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
    ] {
        assert!(parse_prometheus(bad).is_err(), "accepted {bad:?}");
    }
    assert!(parse_prometheus("# HELP a x\n# TYPE a gauge\na{b=\"q\\\"\\n\"} 1.5 123\n").is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text() {
    let changes = BTreeMap::from([
        ("create_contact".to_owned(), 4),
        ("add_list_member".to_owned(), 5),
    ]);
    let fake = Fake::new(&[
        ("alpha", Script::Changes(changes)),
        ("beta", Script::Fail("s1")),
    ]);
    let h = start(&fake, |_| {}).await;
    initial_runs_done(&h, &fake).await;
    let response = h.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    let families = parse_prometheus(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    for (name, kind) in [
        ("audience_sync_runs_total", "counter"),
        ("audience_sync_changes_applied_total", "counter"),
        ("audience_sync_record_failures_total", "counter"),
        ("audience_sync_api_requests_total", "counter"),
        ("audience_sync_api_throttled_total", "counter"),
        ("audience_sync_run_duration_seconds", "histogram"),
        ("audience_sync_config_valid", "gauge"),
    ] {
        assert_eq!(
            families.get(name).map(|f| f.kind.as_str()),
            Some(kind),
            "{name}"
        );
    }
    // Beta fails and is retried every 200 ms at first, so read the counters of settled series.
    let runs = |b, o| {
        sample(
            &families,
            "audience_sync_runs_total",
            &[("binding", b), ("outcome", o)],
        )
    };
    assert_eq!(runs("alpha", "success"), Some(1.0));
    assert!(runs("beta", "failure").unwrap_or(0.0) >= 1.0);
    assert_eq!(
        sample(
            &families,
            "audience_sync_changes_applied_total",
            &[("binding", "alpha"), ("kind", "create_contact")]
        ),
        Some(4.0)
    );
    let beta_failures = runs("beta", "failure").unwrap();
    assert_eq!(
        sample(
            &families,
            "audience_sync_api_requests_total",
            &[("service", "mailchimp")]
        ),
        Some(3.0 + beta_failures),
        "alpha's 3 and beta's 1 per failed run"
    );
    assert_eq!(
        sample(
            &families,
            "audience_sync_api_throttled_total",
            &[("service", "mailchimp")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &families,
            "audience_sync_run_duration_seconds_count",
            &[("binding", "alpha")]
        ),
        Some(1.0)
    );
    assert_eq!(h.stop().await, Outcome::Success);
}
