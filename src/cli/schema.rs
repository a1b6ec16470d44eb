//! `gptbuild schema` and `gptbuild validate`: the spec's JSON Schema, and a spec resolved.

use std::io::Write;

use crate::error::{Error, Result};
use crate::spec::schema::spec_schema;
use crate::spec::{find_spec, Spec};

/// Prints the JSON Schema of a spec file.
pub fn schema(out: &mut dyn Write) -> Result<()> {
    let schema = serde_json::to_string_pretty(&spec_schema())
        .map_err(|e| Error::Usage(format!("cannot write the schema: {e}")))?;
    writeln!(out, "{schema}").map_err(Error::io("writing the schema"))
}

/// Checks a spec and prints it resolved.
pub fn validate(spec: &str, out: &mut dyn Write) -> Result<()> {
    let spec = Spec::load(&find_spec(spec)?)?;
    write!(out, "{}", spec.to_yaml()).map_err(Error::io("writing the spec"))
}
