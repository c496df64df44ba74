//! `pypool doctor`: can this machine run workers? Prints what the facade's
//! environment check ([`pypool::check_environment`]) found, for a person or
//! as JSON; exits 1 when workers could not start.

use pypool::{EnvironmentReport, PythonSpawnerConfig, check_environment};

/// Exit status: workers can start.
pub const EXIT_OK: u8 = 0;
/// Exit status: something stops workers from starting.
pub const EXIT_PROBLEMS: u8 = 1;

/// Runs the check; returns what to print on stdout and the exit status.
pub async fn run(config: &PythonSpawnerConfig, json: bool) -> (String, u8) {
    render(&check_environment(config).await, json)
}

/// The text to print for `report` and the exit status it implies.
pub fn render(report: &EnvironmentReport, json: bool) -> (String, u8) {
    let exit = if report.is_ok() {
        EXIT_OK
    } else {
        EXIT_PROBLEMS
    };
    let text = if json {
        serde_json::to_string_pretty(report)
            .unwrap_or_else(|error| format!(r#"{{"error": "cannot render the report: {error}"}}"#))
    } else {
        report.to_string()
    };
    (text, exit)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn a_missing_interpreter_is_a_problem_with_exit_1() {
        let config = PythonSpawnerConfig::default().with_interpreter("/nonexistent/pypool-python");
        let (text, exit) = run(&config, false).await;
        assert_eq!(exit, EXIT_PROBLEMS);
        assert!(text.contains("/nonexistent/pypool-python"), "{text}");
        let (json, exit) = run(&config, true).await;
        assert_eq!(exit, EXIT_PROBLEMS);
        let json: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(json["interpreter"], "/nonexistent/pypool-python");
        assert_eq!(json["runtime_importable"], false);
        assert!(!json["problems"].as_array().unwrap().is_empty());
    }
}
