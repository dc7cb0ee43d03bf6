//! Figures and how they are printed: one line each, or one JSON object per line (`--json`).
//! A workload run several times reports, per metric, the median of the repetitions and their
//! spread (min and max).

use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// One measured number of one repetition.
#[derive(Clone, Debug)]
pub struct Sample {
    pub metric: String,
    pub value: f64,
    pub unit: &'static str,
}

impl Sample {
    pub fn new(metric: impl Into<String>, value: f64, unit: &'static str) -> Sample {
        Sample { metric: metric.into(), value, unit }
    }
}

/// One reported figure: the median over the repetitions, with their min and max.
#[derive(Clone, Debug, Serialize)]
pub struct Figure {
    pub target: String,
    pub workload: String,
    pub metric: String,
    pub value: f64,
    pub unit: &'static str,
    pub min: f64,
    pub max: f64,
    pub reps: usize,
}

/// Folds the samples of several repetitions into figures, in first-seen metric order.
pub fn fold(target: &str, workload: &str, reps: &[Vec<Sample>]) -> Vec<Figure> {
    let mut order: Vec<(String, &'static str)> = Vec::new();
    let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for rep in reps {
        for s in rep {
            if !values.contains_key(&s.metric) {
                order.push((s.metric.clone(), s.unit));
            }
            values.entry(s.metric.clone()).or_default().push(s.value);
        }
    }
    order
        .into_iter()
        .map(|(metric, unit)| {
            let mut v = values.remove(&metric).unwrap_or_default();
            v.sort_by(f64::total_cmp);
            Figure {
                target: target.to_owned(),
                workload: workload.to_owned(),
                value: median_of_sorted(&v),
                min: v.first().copied().unwrap_or(f64::NAN),
                max: v.last().copied().unwrap_or(f64::NAN),
                reps: v.len(),
                metric,
                unit,
            }
        })
        .collect()
}

fn median_of_sorted(v: &[f64]) -> f64 {
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => f64::midpoint(v[n / 2 - 1], v[n / 2]),
    }
}

/// Prints figures as text lines or JSON lines (a closed stdout ends the printing quietly).
pub fn print(figures: &[Figure], json: bool) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for f in figures {
        let written = if json {
            match serde_json::to_string(f) {
                Ok(line) => writeln!(out, "{line}"),
                Err(e) => writeln!(out, "{{\"error\":\"cannot encode a figure: {e}\"}}"),
            }
        } else if f.reps > 1 {
            writeln!(
                out,
                "{:<6} {:<9} {:<26} {:>12.1} {:<6} (min {:.1}, max {:.1}, {} reps)",
                f.target, f.workload, f.metric, f.value, f.unit, f.min, f.max, f.reps
            )
        } else {
            writeln!(out, "{:<6} {:<9} {:<26} {:>12.1} {}", f.target, f.workload, f.metric, f.value, f.unit)
        };
        if written.and_then(|()| out.flush()).is_err() {
            return;
        }
    }
}

/// Latency samples of one operation, summarised as percentiles in microseconds.
#[derive(Default)]
pub struct Latencies {
    nanos: Vec<u64>,
}

impl Latencies {
    pub fn with_capacity(n: usize) -> Latencies {
        Latencies { nanos: Vec::with_capacity(n) }
    }

    pub fn record(&mut self, d: Duration) {
        self.nanos.push(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    pub fn extend(&mut self, other: Latencies) {
        self.nanos.extend(other.nanos);
    }

    pub fn len(&self) -> usize {
        self.nanos.len()
    }

    /// The `q` quantile (0..=1) in microseconds, nearest-rank; NaN when empty.
    pub fn quantile_us(&mut self, q: f64) -> f64 {
        if self.nanos.is_empty() {
            return f64::NAN;
        }
        self.nanos.sort_unstable();
        let rank = ((q * self.nanos.len() as f64).ceil() as usize).clamp(1, self.nanos.len());
        self.nanos[rank - 1] as f64 / 1000.0
    }

    /// Samples `{name}.p50`, `.p99` and `.p999`, in µs.
    pub fn percentiles(&mut self, name: &str) -> Vec<Sample> {
        vec![
            Sample::new(format!("{name}.p50"), self.quantile_us(0.5), "us"),
            Sample::new(format!("{name}.p99"), self.quantile_us(0.99), "us"),
            Sample::new(format!("{name}.p999"), self.quantile_us(0.999), "us"),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_reports_median_and_spread_per_metric() {
        let reps = vec![
            vec![Sample::new("a", 3.0, "us"), Sample::new("b", 1.0, "ops/s")],
            vec![Sample::new("a", 1.0, "us"), Sample::new("b", 2.0, "ops/s")],
            vec![Sample::new("a", 2.0, "us"), Sample::new("b", 9.0, "ops/s")],
        ];
        let f = fold("baton", "w", &reps);
        assert_eq!(f.len(), 2);
        assert_eq!((f[0].metric.as_str(), f[0].value, f[0].min, f[0].max), ("a", 2.0, 1.0, 3.0));
        assert_eq!((f[1].metric.as_str(), f[1].value, f[1].reps), ("b", 2.0, 3));
    }

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let mut l = Latencies::default();
        for us in 1..=1000 {
            l.record(Duration::from_micros(us));
        }
        assert!((l.quantile_us(0.5) - 500.0).abs() < 1e-9);
        assert!((l.quantile_us(0.99) - 990.0).abs() < 1e-9);
        assert!((l.quantile_us(0.999) - 999.0).abs() < 1e-9);
    }
}
