//! The spec's enumerations as command-line values (`--device cuda`, `--precision bf16`): the
//! names are the spec's own, so the core types need not know the command line exists.

use clap::builder::PossibleValue;
use clap::ValueEnum;

use crate::layers::precision::Precision;
use crate::spec::DeviceSpec;

impl ValueEnum for DeviceSpec {
    fn value_variants<'a>() -> &'a [Self] {
        &[DeviceSpec::Auto, DeviceSpec::Cpu, DeviceSpec::Cuda]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(match self {
            DeviceSpec::Auto => "auto",
            DeviceSpec::Cpu => "cpu",
            DeviceSpec::Cuda => "cuda",
        }))
    }
}

impl ValueEnum for Precision {
    fn value_variants<'a>() -> &'a [Self] {
        &[Precision::Fp32, Precision::Bf16]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command line's names are the spec's (serde's), so `--precision bf16` means
    /// `precision: bf16`.
    #[test]
    fn command_line_names_are_the_specs() {
        for device in DeviceSpec::value_variants() {
            let name = device.to_possible_value().unwrap().get_name().to_string();
            assert_eq!(serde_norway::to_string(device).unwrap().trim(), name);
        }
        for precision in Precision::value_variants() {
            let name = precision
                .to_possible_value()
                .unwrap()
                .get_name()
                .to_string();
            assert_eq!(serde_norway::to_string(precision).unwrap().trim(), name);
        }
    }
}
