//! How a process learns that it is one of several: the environment variables `torchrun` sets for
//! every worker (and that anyone may set by hand, as PyTorch's `env://` rendezvous reads them).
//!
//! | variable | meaning |
//! |---|---|
//! | `RANK`, `WORLD_SIZE` | this process's place among all, and how many there are |
//! | `LOCAL_RANK`, `LOCAL_WORLD_SIZE` | the same on this machine (which GPU, how many cores) |
//! | `MASTER_ADDR`, `MASTER_PORT` | where the ranks meet (a TCPStore) |
//! | `TORCHELASTIC_USE_AGENT_STORE` | `True`: torchrun's agent serves that store already |
//! | `TORCHELASTIC_RESTART_COUNT` | how often torchrun restarted the workers (a fresh key space) |
//! | `GPTBUILD_DIST_TIMEOUT` | gptbuild's own: seconds to wait for a rank before giving up |

use std::time::Duration;

use crate::error::{Error, Result};

/// How long a rank waits for the others (to join, or to finish a collective) by default: long
/// enough for rank 0 to write a large checkpoint while the others wait at the next step.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// The variable that sets the timeout, in seconds.
pub const TIMEOUT_VARIABLE: &str = "GPTBUILD_DIST_TIMEOUT";

/// One process's part in a multi-process launch.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    pub rank: usize,
    pub world_size: usize,
    pub local_rank: usize,
    pub local_world_size: usize,
    pub master_addr: String,
    pub master_port: u16,
    /// Whether torchrun's agent serves the store (else rank 0 does).
    pub agent_store: bool,
    pub restart_count: u64,
    pub timeout: Duration,
}

impl Launch {
    /// The launch this process's environment describes, or `None` for a single process (neither
    /// `RANK` nor `WORLD_SIZE` set, or a world of one).
    pub fn from_env() -> Result<Option<Launch>> {
        Launch::from_vars(|name| std::env::var(name).ok())
    }

    /// As [`Launch::from_env`], reading the variables through `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Launch>> {
        if var("RANK").is_none() && var("WORLD_SIZE").is_none() {
            return Ok(None);
        }
        let invalid = |message: String| Error::Usage(format!("distributed launch: {message}"));
        let required = |name: &str| {
            var(name).ok_or_else(|| {
                invalid(format!(
                    "{name} is not set (RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT go \
                     together; torchrun sets them all)"
                ))
            })
        };
        let number = |name: &str, text: String| {
            text.trim()
                .parse::<usize>()
                .map_err(|_| invalid(format!("{name}={text:?} is not a non-negative integer")))
        };
        let world_size = number("WORLD_SIZE", required("WORLD_SIZE")?)?;
        let rank = number("RANK", required("RANK")?)?;
        if world_size == 0 || rank >= world_size {
            return Err(invalid(format!(
                "RANK={rank} must be below WORLD_SIZE={world_size}"
            )));
        }
        if world_size == 1 {
            return Ok(None);
        }
        let optional = |name: &str, default: usize| match var(name) {
            Some(text) => number(name, text),
            None => Ok(default),
        };
        let local_rank = optional("LOCAL_RANK", rank)?;
        let local_world_size = optional("LOCAL_WORLD_SIZE", world_size)?;
        if local_world_size == 0 || local_rank >= local_world_size {
            return Err(invalid(format!(
                "LOCAL_RANK={local_rank} must be below LOCAL_WORLD_SIZE={local_world_size}"
            )));
        }
        let master_addr = required("MASTER_ADDR")?;
        let port = required("MASTER_PORT")?;
        let master_port = port
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| invalid(format!("MASTER_PORT={port:?} is not a port number")))?;
        let agent_store = var("TORCHELASTIC_USE_AGENT_STORE")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true") || v.trim() == "1");
        let restart_count = var("TORCHELASTIC_RESTART_COUNT")
            .map(|text| number("TORCHELASTIC_RESTART_COUNT", text))
            .transpose()?
            .unwrap_or(0) as u64;
        let timeout = match var(TIMEOUT_VARIABLE) {
            None => DEFAULT_TIMEOUT,
            Some(text) => text
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .ok_or_else(|| {
                    invalid(format!(
                        "{TIMEOUT_VARIABLE}={text:?} is not a positive number of seconds"
                    ))
                })?,
        };
        Ok(Some(Launch {
            rank,
            world_size,
            local_rank,
            local_world_size,
            master_addr,
            master_port,
            agent_store,
            restart_count,
            timeout,
        }))
    }

    /// Where this launch's ranks meet. The keys live under a prefix of their own, fresh for each
    /// restart of the workers (torchrun's agent keeps its store across restarts).
    pub fn rendezvous(&self) -> Rendezvous {
        Rendezvous {
            host: self.master_addr.clone(),
            port: self.master_port,
            rank: self.rank,
            world_size: self.world_size,
            store_is_served: self.agent_store,
            prefix: format!("gptbuild/{}", self.restart_count),
            timeout: self.timeout,
        }
    }

    /// The device this rank trains on when the spec asks for `device`: its own GPU on this
    /// machine (`LOCAL_RANK`), or the CPU.
    pub fn device_for(&self, device: tch::Device) -> tch::Device {
        match device {
            tch::Device::Cuda(_) => tch::Device::Cuda(self.local_rank),
            other => other,
        }
    }

    /// libtorch threads per process when the user asked for libtorch's default (one per core):
    /// the cores shared among this machine's ranks, unless `OMP_NUM_THREADS` (torchrun sets 1)
    /// already decides.
    pub fn default_threads(&self, cores: i64) -> Option<i64> {
        if std::env::var_os("OMP_NUM_THREADS").is_some() {
            return None;
        }
        Some((cores / self.local_world_size as i64).max(1))
    }
}

/// Where and how the ranks of one group meet: a TCPStore at `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendezvous {
    pub host: String,
    pub port: u16,
    pub rank: usize,
    pub world_size: usize,
    /// Whether someone else (torchrun's agent) serves the store; else rank 0 does.
    pub store_is_served: bool,
    /// Namespace of this group's keys in the store.
    pub prefix: String,
    /// How long to wait for a rank to join, or for a collective to complete.
    pub timeout: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(vars: &[(&str, &str)]) -> Result<Option<Launch>> {
        Launch::from_vars(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }

    const TORCHRUN: &[(&str, &str)] = &[
        ("RANK", "1"),
        ("WORLD_SIZE", "2"),
        ("LOCAL_RANK", "1"),
        ("LOCAL_WORLD_SIZE", "2"),
        ("MASTER_ADDR", "127.0.0.1"),
        ("MASTER_PORT", "29500"),
        ("TORCHELASTIC_USE_AGENT_STORE", "True"),
        ("TORCHELASTIC_RESTART_COUNT", "3"),
    ];

    #[test]
    fn no_variables_is_one_process() {
        assert_eq!(launch(&[]).unwrap(), None);
        assert_eq!(launch(&[("RANK", "0"), ("WORLD_SIZE", "1")]).unwrap(), None);
    }

    #[test]
    fn torchruns_variables_make_a_launch() {
        let launch = launch(TORCHRUN).unwrap().expect("two processes");
        assert_eq!(
            (launch.rank, launch.world_size, launch.local_rank),
            (1, 2, 1)
        );
        assert!(launch.agent_store);
        let rendezvous = launch.rendezvous();
        assert_eq!(
            (rendezvous.host.as_str(), rendezvous.port),
            ("127.0.0.1", 29500)
        );
        assert!(rendezvous.store_is_served);
        assert_eq!(rendezvous.prefix, "gptbuild/3");
        assert_eq!(rendezvous.timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn by_hand_rank_0_serves_the_store_and_local_values_default_to_global() {
        let vars = [
            ("RANK", "0"),
            ("WORLD_SIZE", "3"),
            ("MASTER_ADDR", "localhost"),
            ("MASTER_PORT", "1234"),
            (TIMEOUT_VARIABLE, "2.5"),
        ];
        let launch = launch(&vars).unwrap().expect("three processes");
        assert_eq!((launch.local_rank, launch.local_world_size), (0, 3));
        assert!(!launch.rendezvous().store_is_served);
        assert_eq!(launch.timeout, Duration::from_millis(2500));
    }

    #[test]
    fn a_broken_launch_is_an_error_naming_the_variable() {
        let error = |vars: &[(&str, &str)]| launch(vars).unwrap_err().to_string();
        assert!(error(&[("RANK", "0"), ("WORLD_SIZE", "2")]).contains("MASTER_ADDR is not set"));
        assert!(error(&[("RANK", "2"), ("WORLD_SIZE", "2")]).contains("below WORLD_SIZE"));
        assert!(error(&[("RANK", "x"), ("WORLD_SIZE", "2")]).contains("RANK=\"x\""));
        let mut vars = TORCHRUN.to_vec();
        vars.push((TIMEOUT_VARIABLE, "-1"));
        assert!(error(&vars).contains(TIMEOUT_VARIABLE));
        let mut vars = TORCHRUN.to_vec();
        vars[5] = ("MASTER_PORT", "70000");
        assert!(error(&vars).contains("MASTER_PORT"));
    }
}
