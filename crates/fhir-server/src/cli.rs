//! Sub-commands other than `serve`.

use std::process::ExitCode;

use crate::config::FhirpathArgs;

/// `fhir-server fhirpath EXPRESSION FILE.json`: prints the result collection as JSON;
/// errors (with the position in the expression) go to stderr with a non-zero exit.
pub fn fhirpath(args: &FhirpathArgs) -> ExitCode {
    let fail = |msg: String| {
        eprintln!("error: {msg}");
        ExitCode::FAILURE
    };
    let expr = match fhirpath::compile(&args.expression) {
        Ok(e) => e,
        Err(e) => {
            return fail(format!(
                "{e}\n  {}\n  {}^",
                args.expression,
                " ".repeat(e.column.saturating_sub(1))
            ))
        }
    };
    let bytes = match std::fs::read(&args.file) {
        Ok(b) => b,
        Err(e) => return fail(format!("{}: {e}", args.file.display())),
    };
    let input = match fhir_model::json::parse(&bytes) {
        Ok(v) => v,
        Err(e) => return fail(format!("{}: {e}", args.file.display())),
    };
    // %resource defaults to the input.
    let ctx = fhirpath::EvalContext::with_definitions(fhir_model::Definitions::r4());
    match expr.evaluate(&ctx, &input) {
        Ok(result) => {
            println!("{}", fhir_model::json::to_string_pretty(&result.to_json()));
            ExitCode::SUCCESS
        }
        Err(e) => fail(e.to_string()),
    }
}
