//! The learning rate over training: an optional linear warm-up, then constant or a cosine decay to
//! a floor ("SGDR", Loshchilov & Hutter 2016, arXiv 1608.03983, without restarts; nanoGPT's
//! schedule). Warm-up keeps the first updates small while Adam's moment estimates are still noisy;
//! the decay lets the last iterations settle into a minimum instead of bouncing around it.

use serde::{Deserialize, Serialize};

use crate::error::SpecError;

/// After the warm-up.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Decay {
    /// Stay at `learning_rate` (the course).
    #[default]
    Constant,
    /// Half a cosine from `learning_rate` down to `min_learning_rate` at `decay_iters`.
    Cosine,
}

/// `training.schedule`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Iterations of linear warm-up to `learning_rate`.
    #[serde(default)]
    pub warmup_iters: i64,
    #[serde(default)]
    pub decay: Decay,
    /// The floor of the cosine; defaults to `learning_rate / 10`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_learning_rate: Option<f64>,
    /// The iteration where the cosine reaches its floor; defaults to `max_iters`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decay_iters: Option<i64>,
}

/// The schedule resolved: the cosine's floor and end worked out, ready to be followed.
/// Serialises as the `schedule:` section written out in full.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(into = "ScheduleSpec")]
pub struct Schedule {
    pub warmup_iters: i64,
    pub after_warmup: AfterWarmup,
}

/// What the learning rate does once the warm-up is over.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AfterWarmup {
    Constant,
    /// From `learning_rate` down to `floor` at iteration `end`, then `floor`.
    Cosine {
        floor: f64,
        end: i64,
    },
}

impl Default for Schedule {
    /// The course's: constant, no warm-up.
    fn default() -> Self {
        Schedule {
            warmup_iters: 0,
            after_warmup: AfterWarmup::Constant,
        }
    }
}

impl From<Schedule> for ScheduleSpec {
    fn from(schedule: Schedule) -> ScheduleSpec {
        let (decay, min_learning_rate, decay_iters) = match schedule.after_warmup {
            AfterWarmup::Constant => (Decay::Constant, None, None),
            AfterWarmup::Cosine { floor, end } => (Decay::Cosine, Some(floor), Some(end)),
        };
        ScheduleSpec {
            warmup_iters: schedule.warmup_iters,
            decay,
            min_learning_rate,
            decay_iters,
        }
    }
}

impl ScheduleSpec {
    /// Works out the defaults that depend on the rest of the training section and checks the
    /// fields.
    pub fn resolve(&self, learning_rate: f64, max_iters: i64) -> Result<Schedule, SpecError> {
        if self.warmup_iters < 0 {
            return Err(SpecError::new(
                "warmup_iters",
                format!("must be 0 or more, got {}", self.warmup_iters),
            ));
        }
        let after_warmup = match self.decay {
            Decay::Constant if self.min_learning_rate.is_some() || self.decay_iters.is_some() => {
                return Err(SpecError::new(
                    "decay",
                    "min_learning_rate and decay_iters only apply to decay: cosine",
                ))
            }
            Decay::Constant => AfterWarmup::Constant,
            Decay::Cosine => {
                let floor = self.min_learning_rate.unwrap_or(learning_rate / 10.0);
                if !(floor >= 0.0 && floor <= learning_rate) {
                    return Err(SpecError::new(
                        "min_learning_rate",
                        format!("must be in [0, learning_rate = {learning_rate}], got {floor}"),
                    ));
                }
                let end = self.decay_iters.unwrap_or(max_iters);
                if end <= self.warmup_iters {
                    return Err(SpecError::new(
                        "decay_iters",
                        format!(
                            "must be after the warm-up ({} iterations), got {end}",
                            self.warmup_iters
                        ),
                    ));
                }
                AfterWarmup::Cosine { floor, end }
            }
        };
        Ok(Schedule {
            warmup_iters: self.warmup_iters,
            after_warmup,
        })
    }
}

impl Schedule {
    /// The learning rate of the step at `iteration`, for a peak of `learning_rate`.
    pub fn learning_rate(&self, learning_rate: f64, iteration: i64) -> f64 {
        let warmup = self.warmup_iters;
        if iteration < warmup {
            return learning_rate * (iteration + 1) as f64 / (warmup + 1) as f64;
        }
        match self.after_warmup {
            AfterWarmup::Constant => learning_rate,
            AfterWarmup::Cosine { floor, end } => {
                if iteration >= end {
                    return floor;
                }
                let progress = (iteration - warmup) as f64 / (end - warmup) as f64;
                let coefficient = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                floor + coefficient * (learning_rate - floor)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(warmup: i64) -> Schedule {
        let schedule = ScheduleSpec {
            warmup_iters: warmup,
            decay: Decay::Cosine,
            ..ScheduleSpec::default()
        };
        schedule.resolve(1e-3, 1000).unwrap()
    }

    #[test]
    fn constant_is_the_learning_rate() {
        assert_eq!(Schedule::default().learning_rate(3e-4, 12345), 3e-4);
    }

    #[test]
    fn warm_up_rises_linearly_then_the_cosine_falls_to_the_floor() {
        let s = cosine(100);
        assert_eq!(
            s.after_warmup,
            AfterWarmup::Cosine {
                floor: 1e-4,
                end: 1000
            }
        );
        assert!((s.learning_rate(1e-3, 0) - 1e-3 / 101.0).abs() < 1e-12);
        assert!((s.learning_rate(1e-3, 99) - 1e-3 * 100.0 / 101.0).abs() < 1e-12);
        assert!(
            (s.learning_rate(1e-3, 100) - 1e-3).abs() < 1e-12,
            "peak after warm-up"
        );
        assert!(
            (s.learning_rate(1e-3, 550) - 5.5e-4).abs() < 1e-12,
            "halfway: the mean"
        );
        assert_eq!(s.learning_rate(1e-3, 1000), 1e-4);
        assert_eq!(s.learning_rate(1e-3, 5000), 1e-4);
        let mut previous = f64::INFINITY;
        for i in 100..1000 {
            let lr = s.learning_rate(1e-3, i);
            assert!(lr <= previous, "falls monotonically");
            previous = lr;
        }
    }

    #[test]
    fn bad_schedules_name_their_field() {
        let s = ScheduleSpec {
            decay: Decay::Cosine,
            min_learning_rate: Some(1.0),
            ..ScheduleSpec::default()
        };
        assert_eq!(s.resolve(1e-3, 10).unwrap_err().field, "min_learning_rate");
        let s = ScheduleSpec {
            warmup_iters: 50,
            decay: Decay::Cosine,
            decay_iters: Some(20),
            ..ScheduleSpec::default()
        };
        assert_eq!(s.resolve(1e-3, 10).unwrap_err().field, "decay_iters");
        let s = ScheduleSpec {
            decay_iters: Some(20),
            ..ScheduleSpec::default()
        };
        assert_eq!(s.resolve(1e-3, 10).unwrap_err().field, "decay");
    }
}
