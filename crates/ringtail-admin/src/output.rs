//! What a command prints: the text form (tables) and the `--format json` form of its result.

use crate::error::AdminError;

/// How results are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned tables, as rpk and Kafka's tools print them.
    #[default]
    Text,
    /// One JSON document (object or array) on stdout.
    Json,
}

/// What a command printed: its text form and its JSON form; [`print`] writes the one asked.
pub struct Output {
    /// The text form (tables), ending in a newline.
    pub text: String,
    /// The `--format json` form.
    pub json: serde_json::Value,
}

/// Writes `output` to stdout in `format`.
pub fn print(output: &Output, format: Format) {
    match format {
        Format::Text => print!("{}", output.text),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&output.json).unwrap_or_else(|_| "null".to_string())
        ),
    }
}

/// A command's output and, when some items failed, the error to exit with after printing.
pub type Outcome = Result<(Output, Option<AdminError>), AdminError>;
