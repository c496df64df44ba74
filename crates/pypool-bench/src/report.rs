//! The benchmark report: what was measured, on what, with which ratios and
//! goals; written as `report.json` (machine-readable, stable field names) and
//! `report.md` (a person's reading).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One whole run of the benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Seconds since the Unix epoch when the run started.
    pub started_unix_s: u64,
    /// Wall time of the whole run, seconds.
    pub wall_s: f64,
    /// The machine, interpreter and revision measured.
    pub machine: Machine,
    /// The run's parameters.
    pub settings: Settings,
    /// Each workload with its baselines, in the order run.
    pub workloads: Vec<Workload>,
}

/// Where the run happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Operating system and kernel release, e.g. `Linux 6.1.0`.
    pub os: String,
    /// The CPU model name from `/proc/cpuinfo` (empty when unknown).
    pub cpu_model: String,
    /// CPUs available to this process.
    pub cpus: usize,
    /// Physical memory (`MemTotal` of `/proc/meminfo`), bytes; 0 when unknown.
    #[serde(default)]
    pub memory_bytes: u64,
    /// The 1-minute load average when the run started (`/proc/loadavg`): above
    /// the CPU count, other work shared the machine and the figures are noisier.
    pub load_average: Option<f64>,
    /// The Python interpreter the workers and baselines ran on.
    pub python: String,
    /// Its version, e.g. `3.11.7`.
    pub python_version: String,
    /// DSPy's version in that interpreter, if installed.
    pub dspy_version: Option<String>,
    /// `git rev-parse` of the measured tree (`-dirty` when it had changes).
    pub pypool_rev: String,
    /// The pypool crates' version.
    #[serde(default)]
    pub pypool_version: String,
}

/// The run's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Whether the short (`--quick`) durations were used.
    pub quick: bool,
    /// The fake LM's answer latency, ms.
    pub lm_latency_ms: u64,
    /// The workloads selected (`--only`), all when empty.
    pub only: Vec<String>,
}

/// One workload: every contestant's figures, and the ratios between them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// Short stable name (`lm`, `noop`, …), as given to `--only`.
    pub id: String,
    /// Heading in the Markdown report.
    pub title: String,
    /// What runs, in one or two sentences.
    pub description: String,
    /// The workload's parameters (workers, callers in flight, window, …),
    /// by name, for tools that compare runs.
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// The measured figures.
    pub figures: Vec<Figure>,
    /// Ratios between figures of this workload (same run).
    pub ratios: Vec<Ratio>,
    /// Contestants that failed (their figures are missing), with why.
    pub failures: Vec<String>,
    /// Charts of this workload, drawn as `<id>-<chart id>.svg` beside the report.
    #[serde(default)]
    pub charts: Vec<Chart>,
}

/// A chart: one or more series of points on the same axes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chart {
    /// Stable name within the workload (the SVG is `<workload>-<id>.svg`).
    pub id: String,
    /// Its caption.
    pub title: String,
    /// The horizontal axis: what it shows.
    pub x_label: String,
    /// The vertical axis: what it shows.
    pub y_label: String,
    /// How x values are placed.
    pub x_scale: Scale,
    /// How y values are placed.
    pub y_scale: Scale,
    /// The lines drawn.
    pub series: Vec<Series>,
}

/// How an axis places its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// Evenly.
    Linear,
    /// Logarithmically (every value must be positive).
    Log,
    /// Logarithmically with ticks at powers of two (worker counts, callers).
    Log2,
    /// Percentiles, by their nines: 0, 90, 99, 99.9 evenly spaced (values are
    /// percentiles in `[0, 100)`).
    Nines,
}

/// One line of a chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Its legend entry.
    pub label: String,
    /// `[x, y]` points, in order of x.
    pub points: Vec<[f64; 2]>,
}

impl Chart {
    /// The SVG file name of this chart of workload `workload`.
    pub fn file_name(&self, workload: &str) -> String {
        format!("{workload}-{}.svg", self.id)
    }
}

/// One measured number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// Stable name within the workload (`pypool`, `mp_pool`, …).
    pub id: String,
    /// What was measured, for a person.
    pub label: String,
    /// The value.
    pub value: f64,
    /// Its unit (`calls/s`, `µs`, …).
    pub unit: String,
    /// The goal this figure is held to, if any.
    pub goal: Option<Goal>,
}

/// `numerator ÷ denominator` of two figures of the same workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ratio {
    /// Stable name within the workload.
    pub id: String,
    /// What it compares, for a person.
    pub label: String,
    /// The numerator figure's id.
    pub numerator: String,
    /// The denominator figure's id.
    pub denominator: String,
    /// The ratio; `None` when a figure is missing or the denominator is 0.
    pub value: Option<f64>,
    /// The goal this ratio is held to, if any.
    pub goal: Option<Goal>,
}

/// A bound a figure or ratio should meet.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Goal {
    /// At least this value.
    AtLeast(f64),
    /// At most this value.
    AtMost(f64),
}

impl Goal {
    /// Whether `value` meets the goal.
    pub fn met_by(self, value: f64) -> bool {
        match self {
            Goal::AtLeast(bound) => value >= bound,
            Goal::AtMost(bound) => value <= bound,
        }
    }

    fn describe(self, unit: &str) -> String {
        let (sign, bound) = match self {
            Goal::AtLeast(bound) => ("≥", bound),
            Goal::AtMost(bound) => ("≤", bound),
        };
        if unit == "×" {
            format!("{sign} {}×", number(bound))
        } else {
            format!("{sign} {} {unit}", number(bound))
        }
    }
}

impl Workload {
    /// An empty workload.
    pub fn new(id: &str, title: &str, description: &str) -> Self {
        Self {
            id: id.to_owned(),
            title: title.to_owned(),
            description: description.to_owned(),
            parameters: BTreeMap::new(),
            figures: Vec::new(),
            ratios: Vec::new(),
            failures: Vec::new(),
            charts: Vec::new(),
        }
    }

    /// Adds a chart (its series without points are left out; a chart
    /// without any series is not drawn).
    pub fn chart(&mut self, mut chart: Chart) {
        chart.series.retain(|series| !series.points.is_empty());
        if !chart.series.is_empty() {
            self.charts.push(chart);
        }
    }

    /// Records a parameter of the run.
    pub fn parameter(&mut self, name: &str, value: impl Into<serde_json::Value>) {
        self.parameters.insert(name.to_owned(), value.into());
    }

    /// Records a figure.
    pub fn figure(&mut self, id: &str, label: &str, value: f64, unit: &str, goal: Option<Goal>) {
        self.figures.push(Figure {
            id: id.to_owned(),
            label: label.to_owned(),
            value,
            unit: unit.to_owned(),
            goal,
        });
    }

    /// The value of the figure `id`, if recorded.
    pub fn value(&self, id: &str) -> Option<f64> {
        self.figures
            .iter()
            .find(|figure| figure.id == id)
            .map(|figure| figure.value)
    }

    /// Records `numerator ÷ denominator` (both figure ids of this workload);
    /// the value is `None` when either is missing or the denominator is 0.
    pub fn ratio(
        &mut self,
        id: &str,
        label: &str,
        numerator: &str,
        denominator: &str,
        goal: Option<Goal>,
    ) {
        let value = match (self.value(numerator), self.value(denominator)) {
            (Some(top), Some(bottom)) if bottom != 0.0 => Some(top / bottom),
            _ => None,
        };
        self.ratios.push(Ratio {
            id: id.to_owned(),
            label: label.to_owned(),
            numerator: numerator.to_owned(),
            denominator: denominator.to_owned(),
            value,
            goal,
        });
    }

    /// Records that a contestant failed, and why.
    pub fn fail(&mut self, why: impl Into<String>) {
        self.failures.push(why.into());
    }
}

impl Report {
    /// The report as Markdown.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let machine = &self.machine;
        let _ = writeln!(out, "# pypool benchmark report\n");
        let _ = writeln!(
            out,
            "Every ratio compares figures measured in this one run. Mode: {}; fake LM latency {} ms; \
             whole run {:.1} s.\n",
            if self.settings.quick { "quick" } else { "full" },
            self.settings.lm_latency_ms,
            self.wall_s
        );
        let _ = writeln!(out, "| machine | |\n|---|---|");
        let _ = writeln!(out, "| OS | {} |", machine.os);
        let _ = writeln!(out, "| CPU | {} |", empty_as_unknown(&machine.cpu_model));
        let _ = writeln!(out, "| CPUs | {} |", machine.cpus);
        let _ = writeln!(out, "| memory | {} |", memory(machine.memory_bytes));
        if let Some(load) = machine.load_average {
            let _ = writeln!(out, "| load average at start (1 min) | {load:.2} |");
        }
        let _ = writeln!(
            out,
            "| Python | {} (`{}`) |",
            machine.python_version, machine.python
        );
        let _ = writeln!(
            out,
            "| DSPy | {} |",
            machine.dspy_version.as_deref().unwrap_or("not installed")
        );
        let _ = writeln!(
            out,
            "| pypool | {} (`{}`) |",
            empty_as_unknown(&machine.pypool_version),
            machine.pypool_rev
        );
        let _ = writeln!(out, "| started | {} |", utc(self.started_unix_s));
        for workload in &self.workloads {
            let _ = writeln!(out, "\n## {}\n\n{}\n", workload.title, workload.description);
            if !workload.figures.is_empty() {
                let _ = writeln!(out, "| what | result | goal |\n|---|---|---|");
                for figure in &workload.figures {
                    let _ = writeln!(
                        out,
                        "| {} | {} {} | {} |",
                        figure.label,
                        number(figure.value),
                        figure.unit,
                        goal_cell(figure.goal, Some(figure.value), &figure.unit)
                    );
                }
            }
            if !workload.ratios.is_empty() {
                let _ = writeln!(out, "\n| ratio | value | goal |\n|---|---|---|");
                for ratio in &workload.ratios {
                    let value = ratio
                        .value
                        .map_or_else(|| "n/a".to_owned(), |value| format!("{value:.2}×"));
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} |",
                        ratio.label,
                        value,
                        goal_cell(ratio.goal, ratio.value, "×")
                    );
                }
            }
            for failure in &workload.failures {
                let _ = writeln!(out, "\n> failed: {failure}");
            }
            for chart in &workload.charts {
                let _ = writeln!(
                    out,
                    "\n![{}]({})",
                    chart.title,
                    chart.file_name(&workload.id)
                );
            }
        }
        out
    }

    /// The measurements table for the README (between its bench markers):
    /// one line on the run and the machine, then every goal and every ratio.
    pub fn readme_table(&self) -> String {
        let machine = &self.machine;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} run of `cargo xtask bench{}`, {}: {} ({} CPUs, {}), {}; Python {}, DSPy {}; pypool {} (`{}`); \
             load average {} at the start. Each ratio compares two figures of this one run.\n",
            if self.settings.quick { "Quick" } else { "Full" },
            if self.settings.quick { " --quick" } else { "" },
            utc(self.started_unix_s),
            empty_as_unknown(&machine.cpu_model),
            machine.cpus,
            memory(machine.memory_bytes),
            machine.os,
            machine.python_version,
            machine.dspy_version.as_deref().unwrap_or("not installed"),
            empty_as_unknown(&machine.pypool_version),
            machine.pypool_rev,
            machine
                .load_average
                .map_or_else(|| "unknown".to_owned(), |load| format!("{load:.2}")),
        );
        let _ = writeln!(
            out,
            "| workload | measure | result | goal |\n|---|---|---|---|"
        );
        for workload in &self.workloads {
            for figure in workload
                .figures
                .iter()
                .filter(|figure| figure.goal.is_some())
            {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} {} | {} |",
                    workload.id,
                    figure.label,
                    number(figure.value),
                    figure.unit,
                    goal_cell(figure.goal, Some(figure.value), &figure.unit)
                );
            }
            for ratio in &workload.ratios {
                let value = ratio
                    .value
                    .map_or_else(|| "n/a".to_owned(), |value| format!("{value:.2}×"));
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} |",
                    workload.id,
                    ratio.label,
                    value,
                    goal_cell(ratio.goal, ratio.value, "×")
                );
            }
            for failure in &workload.failures {
                let _ = writeln!(
                    out,
                    "| `{}` | failed | {} | |",
                    workload.id,
                    failure.replace('|', "/").replace('\n', " ")
                );
            }
        }
        out
    }

    /// Writes `report.json` and `report.md` into `dir` (created if needed);
    /// returns their paths.
    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf), ReportError> {
        std::fs::create_dir_all(dir).map_err(|source| ReportError::Write {
            path: dir.to_owned(),
            source,
        })?;
        let json_path = dir.join("report.json");
        let markdown_path = dir.join("report.md");
        let json = serde_json::to_string_pretty(self).map_err(ReportError::Serialize)?;
        let mut files = vec![
            (json_path.clone(), json),
            (markdown_path.clone(), self.to_markdown()),
        ];
        for workload in &self.workloads {
            for chart in &workload.charts {
                let svg = crate::charts::svg(chart).map_err(|reason| ReportError::Chart {
                    chart: chart.file_name(&workload.id),
                    reason,
                })?;
                files.push((dir.join(chart.file_name(&workload.id)), svg));
            }
        }
        for (path, text) in files {
            std::fs::write(&path, text).map_err(|source| ReportError::Write { path, source })?;
        }
        Ok((json_path, markdown_path))
    }
}

/// The marker lines the README's generated measurements sit between.
pub const README_START: &str = "<!-- bench:start -->";
/// See [`README_START`].
pub const README_END: &str = "<!-- bench:end -->";

/// `readme` with everything between its [`README_START`] and [`README_END`]
/// lines replaced by `table` (the marker lines are kept).
pub fn replace_between_markers(readme: &str, table: &str) -> Result<String, ReadmeError> {
    let start = readme.find(README_START).ok_or(ReadmeError::NoMarkers)?;
    let after_start = start + README_START.len();
    let end = readme[after_start..]
        .find(README_END)
        .map(|offset| after_start + offset)
        .ok_or(ReadmeError::NoMarkers)?;
    if readme[end + README_END.len()..].contains(README_START)
        || readme[after_start..end].contains(README_START)
    {
        return Err(ReadmeError::SeveralMarkers);
    }
    let body = table.trim_end_matches('\n');
    Ok(format!(
        "{}\n{body}\n{}",
        &readme[..after_start],
        &readme[end..]
    ))
}

/// Why the README's table could not be rewritten.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadmeError {
    /// The README lacks the markers (or the end marker precedes the start).
    #[error(
        "the README has no `<!-- bench:start -->` line followed by a `<!-- bench:end -->` line: \
         add both around the measurements table"
    )]
    NoMarkers,
    /// The README holds more than one start marker.
    #[error("the README holds more than one `<!-- bench:start -->` marker: keep one pair")]
    SeveralMarkers,
}

/// Why the report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file or the folder could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The report did not serialize (a non-finite number has no JSON form).
    #[error("cannot serialize the report as JSON: {0}")]
    Serialize(serde_json::Error),
    /// A chart could not be drawn.
    #[error("cannot draw the chart {chart}: {reason}")]
    Chart {
        /// The chart's file name.
        chart: String,
        /// What failed.
        reason: String,
    },
}

/// Bytes as GiB for a person (`unknown` for 0).
fn memory(bytes: u64) -> String {
    if bytes == 0 {
        "unknown".to_owned()
    } else {
        format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` for seconds since the Unix epoch (the civil
/// calendar from days, Howard Hinnant's algorithm).
pub fn utc(unix_s: u64) -> String {
    let days = (unix_s / 86_400) as i64;
    let seconds = unix_s % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        seconds / 3_600,
        seconds / 60 % 60,
        seconds % 60
    )
}

fn empty_as_unknown(text: &str) -> &str {
    if text.is_empty() { "unknown" } else { text }
}

fn goal_cell(goal: Option<Goal>, value: Option<f64>, unit: &str) -> String {
    match (goal, value) {
        (None, _) => String::new(),
        (Some(goal), None) => format!("{} (not measured)", goal.describe(unit)),
        (Some(goal), Some(value)) => format!(
            "{} — {}",
            goal.describe(unit),
            if goal.met_by(value) {
                "**met**"
            } else {
                "**not met**"
            }
        ),
    }
}

/// A number for a person: thousands separated above 1,000, else 3
/// significant digits or so.
pub fn number(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    let magnitude = value.abs();
    if magnitude >= 1_000.0 {
        let rounded = value.round() as i64;
        let digits = rounded.unsigned_abs().to_string();
        let mut grouped = String::new();
        for (index, digit) in digits.chars().enumerate() {
            if index > 0 && (digits.len() - index) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(digit);
        }
        if rounded < 0 {
            format!("-{grouped}")
        } else {
            grouped
        }
    } else if magnitude >= 100.0 {
        format!("{value:.0}")
    } else if magnitude >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let mut noop = Workload::new("noop", "No-op", "ping vs pools");
        noop.parameter("workers", 2);
        noop.figure("pypool", "pypool ping", 24_000.0, "requests/s", None);
        noop.figure(
            "mp_pool",
            "multiprocessing.Pool",
            12_000.0,
            "requests/s",
            None,
        );
        noop.figure("ppe", "ProcessPoolExecutor", 10_000.0, "requests/s", None);
        noop.ratio(
            "vs_mp_pool",
            "pypool ÷ mp.Pool",
            "pypool",
            "mp_pool",
            Some(Goal::AtLeast(1.5)),
        );
        noop.ratio(
            "vs_ppe",
            "pypool ÷ PPE",
            "pypool",
            "ppe",
            Some(Goal::AtLeast(5.0)),
        );
        noop.ratio("vs_missing", "pypool ÷ nothing", "pypool", "absent", None);
        noop.fail("raw pipe: no python");
        noop.chart(Chart {
            id: "scaling".into(),
            title: "Throughput vs concurrency".into(),
            x_label: "callers".into(),
            y_label: "requests/s".into(),
            x_scale: Scale::Log2,
            y_scale: Scale::Linear,
            series: vec![
                Series {
                    label: "pypool".into(),
                    points: vec![[1.0, 3_000.0], [4.0, 9_000.0], [16.0, 20_000.0]],
                },
                Series {
                    label: "not measured".into(),
                    points: vec![],
                },
            ],
        });
        noop.chart(Chart {
            id: "empty".into(),
            title: "Nothing".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            x_scale: Scale::Linear,
            y_scale: Scale::Linear,
            series: vec![],
        });
        let mut facade = Workload::new("facade", "Facade", "mock workers");
        facade.figure("p50", "p50", 4.2, "µs", Some(Goal::AtMost(5.0)));
        Report {
            started_unix_s: 1_700_000_000,
            wall_s: 12.5,
            machine: Machine {
                os: "Linux 6.1".into(),
                cpu_model: String::new(),
                cpus: 2,
                memory_bytes: 24 << 30,
                load_average: Some(8.5),
                python: "/venv/bin/python".into(),
                python_version: "3.11.7".into(),
                dspy_version: None,
                pypool_rev: "abc123-dirty".into(),
                pypool_version: "0.1.0".into(),
            },
            settings: Settings {
                quick: true,
                lm_latency_ms: 100,
                only: vec![],
            },
            workloads: vec![noop, facade],
        }
    }

    #[test]
    fn ratios_divide_the_named_figures_and_goals_are_judged() {
        let report = sample();
        let noop = &report.workloads[0];
        assert_eq!(noop.ratios[0].value, Some(2.0));
        assert_eq!(noop.ratios[1].value, Some(2.4));
        assert_eq!(noop.ratios[2].value, None, "a missing figure has no ratio");
        assert!(Goal::AtLeast(1.5).met_by(2.0));
        assert!(!Goal::AtLeast(5.0).met_by(2.4));
        assert!(Goal::AtMost(5.0).met_by(4.2));
        assert!(!Goal::AtMost(5.0).met_by(6.9));
    }

    #[test]
    fn markdown_shows_machine_figures_ratios_goals_and_notes() {
        let markdown = sample().to_markdown();
        for expected in [
            "| CPUs | 2 |",
            "| load average at start (1 min) | 8.50 |",
            "| Python | 3.11.7 (`/venv/bin/python`) |",
            "| DSPy | not installed |",
            "| pypool | 0.1.0 (`abc123-dirty`) |",
            "| memory | 24.0 GiB |",
            "![Throughput vs concurrency](noop-scaling.svg)",
            "| started | 2023-11-14 22:13:20 UTC |",
            "## No-op",
            "| multiprocessing.Pool | 12,000 requests/s |  |",
            "| pypool ÷ mp.Pool | 2.00× | ≥ 1.50× — **met** |",
            "| pypool ÷ PPE | 2.40× | ≥ 5.00× — **not met** |",
            "| pypool ÷ nothing | n/a |  |",
            "> failed: raw pipe: no python",
            "| p50 | 4.20 µs | ≤ 5.00 µs — **met** |",
            "Mode: quick; fake LM latency 100 ms",
        ] {
            assert!(
                markdown.contains(expected),
                "missing {expected:?} in:\n{markdown}"
            );
        }
    }

    #[test]
    fn write_puts_both_files_and_the_json_reads_back() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let out = dir.path().join("nested").join("bench");
        let report = sample();
        let (json_path, markdown_path) = report.write(&out).expect("the report is written");
        let json = std::fs::read_to_string(&json_path).expect("report.json");
        let back: Report = serde_json::from_str(&json).expect("report.json parses");
        assert_eq!(back, report);
        let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
        assert_eq!(value["machine"]["cpus"], 2);
        assert_eq!(value["workloads"][0]["parameters"]["workers"], 2);
        assert_eq!(value["workloads"][0]["ratios"][0]["value"], 2.0);
        assert_eq!(value["workloads"][0]["ratios"][0]["goal"]["at_least"], 1.5);
        assert_eq!(
            std::fs::read_to_string(&markdown_path).expect("report.md"),
            report.to_markdown()
        );
    }

    #[test]
    fn charts_without_points_are_left_out_and_the_rest_are_written_as_svg() {
        let report = sample();
        let noop = &report.workloads[0];
        assert_eq!(noop.charts.len(), 1, "the chart without series is dropped");
        assert_eq!(
            noop.charts[0].series.len(),
            1,
            "the empty series is dropped"
        );
        let dir = tempfile::tempdir().expect("a temporary folder");
        report.write(dir.path()).expect("the report is written");
        let svg = std::fs::read_to_string(dir.path().join("noop-scaling.svg")).expect("the chart");
        assert!(svg.starts_with("<svg"), "{svg}");
        for text in [
            "Throughput vs concurrency",
            "pypool",
            "requests/s",
            "callers",
        ] {
            assert!(svg.contains(text), "the chart lacks {text:?}");
        }
        assert!(!dir.path().join("noop-empty.svg").exists());
    }

    #[test]
    fn the_readme_table_lists_machine_goals_ratios_and_failures() {
        let table = sample().readme_table();
        for expected in [
            "Quick run of `cargo xtask bench --quick`, 2023-11-14 22:13:20 UTC",
            "(2 CPUs, 24.0 GiB), Linux 6.1; Python 3.11.7, DSPy not installed; pypool 0.1.0 (`abc123-dirty`)",
            "| `noop` | pypool ÷ mp.Pool | 2.00× | ≥ 1.50× — **met** |",
            "| `noop` | pypool ÷ nothing | n/a |  |",
            "| `noop` | failed | raw pipe: no python | |",
            "| `facade` | p50 | 4.20 µs | ≤ 5.00 µs — **met** |",
        ] {
            assert!(
                table.contains(expected),
                "missing {expected:?} in:\n{table}"
            );
        }
    }

    #[test]
    fn the_readme_rewrite_replaces_only_what_is_between_the_markers() {
        let readme = "# Title\n\nintro\n<!-- bench:start -->\nold table\nold line\n<!-- bench:end -->\n\n## Next\n";
        let rewritten =
            replace_between_markers(readme, "| new | table |\n").expect("markers found");
        assert_eq!(
            rewritten,
            "# Title\n\nintro\n<!-- bench:start -->\n| new | table |\n<!-- bench:end -->\n\n## Next\n"
        );
        // Rewriting again with the same table changes nothing.
        assert_eq!(
            replace_between_markers(&rewritten, "| new | table |\n").expect("markers found"),
            rewritten
        );
        assert_eq!(
            replace_between_markers("no markers here\n", "x"),
            Err(ReadmeError::NoMarkers)
        );
        assert_eq!(
            replace_between_markers("<!-- bench:end -->\n<!-- bench:start -->\n", "x"),
            Err(ReadmeError::NoMarkers)
        );
        assert_eq!(
            replace_between_markers(
                "<!-- bench:start -->\na\n<!-- bench:end -->\n<!-- bench:start -->\nb\n<!-- bench:end -->\n",
                "x"
            ),
            Err(ReadmeError::SeveralMarkers)
        );
    }

    #[test]
    fn start_times_read_as_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(4_102_444_799), "2099-12-31 23:59:59 UTC");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(number(305_123.4), "305,123");
        assert_eq!(number(1_000.0), "1,000");
        assert_eq!(number(436.4), "436");
        assert_eq!(number(53.84), "53.8");
        assert_eq!(number(6.912), "6.91");
        assert_eq!(number(-12_345.0), "-12,345");
    }
}
