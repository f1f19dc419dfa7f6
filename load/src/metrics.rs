//! The group commit's figures from the app's Prometheus text (`GET /metrics`): the histograms
//! `onramp_writer_batch_size` and `onramp_writer_commit_seconds`, scraped before and after a phase.

use serde::Serialize;

const BATCH: &str = "onramp_writer_batch_size";
const COMMIT: &str = "onramp_writer_commit_seconds";

/// The writer's histograms at one moment (sums over every label set).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriterSnapshot {
    /// Whether the writer's series were there at all.
    pub seen: bool,
    pub batch_sum: f64,
    pub batch_count: f64,
    pub commit_sum: f64,
    pub commit_count: f64,
    /// Cumulative commit-latency buckets: (upper bound in seconds, count).
    pub commit_buckets: Vec<(f64, f64)>,
}

/// What the writer did during a phase.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WriterFigures {
    /// Group commits (transactions).
    pub commits: u64,
    /// Changes committed.
    pub changes: u64,
    pub mean_batch: f64,
    pub mean_commit_ms: f64,
    /// The upper bound of the bucket holding the 99th percentile commit, when finite.
    pub p99_commit_ms: Option<f64>,
}

/// Scrapes `<app>/metrics` of every app (the processes of one service), their series summed;
/// `None` when one has no such endpoint (or cannot be read).
pub async fn scrape(client: &reqwest::Client, apps: &[String]) -> Option<WriterSnapshot> {
    let mut text = String::new();
    for app in apps {
        let r = client.get(format!("{app}/metrics")).send().await.ok()?;
        if !r.status().is_success() {
            return None;
        }
        text += &r.text().await.ok()?;
        text.push('\n');
    }
    Some(parse(&text))
}

fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    labels.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"'))
    })
}

fn number(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// Reads the writer's series from Prometheus text.
pub fn parse(text: &str) -> WriterSnapshot {
    let mut s = WriterSnapshot::default();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, labels, rest) = match (line.find('{'), line.find(' ')) {
            (Some(b), Some(sp)) if b < sp => {
                let Some(end) = line[b..].find('}').map(|e| b + e) else {
                    continue;
                };
                (&line[..b], &line[b + 1..end], &line[end + 1..])
            }
            (_, Some(sp)) => (&line[..sp], "", &line[sp..]),
            _ => continue,
        };
        let Some(value) = rest.split_whitespace().next().and_then(number) else {
            continue;
        };
        match name.strip_prefix(BATCH).or(name.strip_prefix(COMMIT)) {
            Some(suffix) => {
                s.seen = true;
                let batch = name.starts_with(BATCH);
                match (batch, suffix) {
                    (true, "_sum") => s.batch_sum += value,
                    (true, "_count") => s.batch_count += value,
                    (false, "_sum") => s.commit_sum += value,
                    (false, "_count") => s.commit_count += value,
                    (false, "_bucket") => {
                        if let Some(le) = label(labels, "le").and_then(number) {
                            match s.commit_buckets.iter_mut().find(|(b, _)| *b == le) {
                                Some((_, c)) => *c += value,
                                None => s.commit_buckets.push((le, value)),
                            }
                        }
                    }
                    _ => {}
                }
            }
            None => continue,
        }
    }
    s.commit_buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    s
}

/// The writer's figures between two snapshots; `None` when either is missing (no `/metrics`)
/// or the counters went backwards (the app restarted). A `/metrics` without the writer's series
/// means it has committed nothing yet (the histograms appear with their first value).
pub fn figures(
    before: Option<&WriterSnapshot>,
    after: Option<&WriterSnapshot>,
) -> Option<WriterFigures> {
    let (b, a) = (before?, after?);
    let commits = a.commit_count - b.commit_count;
    let batches = a.batch_count - b.batch_count;
    let changes = a.batch_sum - b.batch_sum;
    let commit_secs = a.commit_sum - b.commit_sum;
    if commits < 0.0 || batches < 0.0 || changes < 0.0 || commit_secs < 0.0 {
        return None;
    }
    let p99_commit_ms = (commits > 0.0)
        .then(|| {
            a.commit_buckets.iter().find_map(|(le, cum)| {
                let before = b
                    .commit_buckets
                    .iter()
                    .find(|(l, _)| l == le)
                    .map_or(0.0, |(_, c)| *c);
                (cum - before >= 0.99 * commits).then_some(*le)
            })
        })
        .flatten()
        .filter(|le| le.is_finite())
        .map(|le| le * 1000.0);
    Some(WriterFigures {
        commits: commits.max(batches) as u64,
        changes: changes as u64,
        mean_batch: if batches > 0.0 {
            changes / batches
        } else {
            0.0
        },
        mean_commit_ms: if commits > 0.0 {
            1000.0 * commit_secs / commits
        } else {
            0.0
        },
        p99_commit_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# TYPE onramp_writer_batch_size histogram
onramp_writer_batch_size_bucket{le=\"1\"} 2
onramp_writer_batch_size_bucket{le=\"+Inf\"} 4
onramp_writer_batch_size_sum 40
onramp_writer_batch_size_count 4
# TYPE onramp_writer_commit_seconds histogram
onramp_writer_commit_seconds_bucket{le=\"0.001\"} 1
onramp_writer_commit_seconds_bucket{le=\"0.005\"} 4
onramp_writer_commit_seconds_bucket{le=\"+Inf\"} 4
onramp_writer_commit_seconds_sum 0.008
onramp_writer_commit_seconds_count 4
onramp_webhooks_total{outcome=\"applied\"} 7
";

    #[test]
    fn reads_the_writer_histograms() {
        let s = parse(TEXT);
        assert!(s.seen);
        assert_eq!((s.batch_sum, s.batch_count), (40.0, 4.0));
        assert_eq!((s.commit_sum, s.commit_count), (0.008, 4.0));
        assert_eq!(s.commit_buckets.len(), 3);
        let f = figures(Some(&WriterSnapshot::default()), Some(&s)).unwrap();
        assert_eq!((f.commits, f.changes), (4, 40));
        assert_eq!(f.mean_batch, 10.0);
        assert!((f.mean_commit_ms - 2.0).abs() < 1e-9);
        assert_eq!(f.p99_commit_ms, Some(5.0));
    }

    #[test]
    fn missing_metrics_are_none() {
        let empty = parse("# nothing\nonramp_other 1\n");
        assert!(!empty.seen);
        assert_eq!(figures(None, Some(&parse(TEXT))), None);
        assert_eq!(figures(Some(&parse(TEXT)), None), None);
        // Counters going backwards: the app restarted between the scrapes.
        assert_eq!(figures(Some(&parse(TEXT)), Some(&empty)), None);
        let idle = figures(Some(&empty), Some(&empty)).unwrap();
        assert_eq!(
            (idle.commits, idle.changes, idle.p99_commit_ms),
            (0, 0, None)
        );
    }
}
