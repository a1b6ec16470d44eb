//! The checks every spec field goes through, in one place: sizes, counts, probabilities, positive
//! reals. Each error names the field; the section that calls it adds its path
//! ([`SpecError::within`]).

use crate::error::SpecError;

/// Checks a normalisation epsilon: small, positive and finite.
pub fn require_eps(eps: f64) -> Result<(), SpecError> {
    if eps > 0.0 && eps.is_finite() {
        Ok(())
    } else {
        Err(SpecError::new(
            "eps",
            format!("must be a small positive number, got {eps}"),
        ))
    }
}

/// The largest size (width, context, count) a spec may ask for: far beyond any model this tool
/// can train, and small enough that products of two sizes never overflow.
pub const MAX_SIZE: i64 = 1 << 24;

/// Checks that a size is at least 1 and at most [`MAX_SIZE`], naming the field otherwise.
pub fn require_size(field: &str, value: i64) -> Result<(), SpecError> {
    if (1..=MAX_SIZE).contains(&value) {
        Ok(())
    } else if value < 1 {
        Err(SpecError::new(
            field,
            format!("must be at least 1, got {value}"),
        ))
    } else {
        Err(SpecError::new(
            field,
            format!("must be at most {MAX_SIZE}, got {value}"),
        ))
    }
}

/// Checks a dropout probability: in [0, 1).
pub fn require_probability(field: &str, p: f64) -> std::result::Result<(), SpecError> {
    if (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        Err(SpecError::new(field, format!("must be in [0, 1), got {p}")))
    }
}

/// A count of iterations: at least 1, no upper bound.
pub fn require_count(field: &str, value: i64) -> std::result::Result<(), SpecError> {
    if value >= 1 {
        Ok(())
    } else {
        Err(SpecError::new(
            field,
            format!("must be at least 1, got {value}"),
        ))
    }
}

pub fn require_positive_real(field: &str, value: f64) -> std::result::Result<(), SpecError> {
    if value > 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(SpecError::new(
            field,
            format!("must be a positive number, got {value}"),
        ))
    }
}
