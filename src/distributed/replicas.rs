//! [`Replicas`] over a c10d process group: what the training step exchanges with the other
//! processes, as tensors on this process's device (Gloo moves CPU tensors, NCCL CUDA ones).
//!
//! Built without the `distributed` feature there is no c10d: joining a group is an error that
//! says so, and no value of [`C10dReplicas`] can exist.
#![cfg_attr(not(feature = "distributed"), allow(unused_imports))]

use tch::{Device, Kind, Tensor};

#[cfg(feature = "distributed")]
use crate::distributed::c10d::{Backend, ProcessGroup};
use crate::distributed::launch::Launch;
use crate::error::{Error, Result};
use crate::train::replicas::{Averaged, Replicas, Requests};

/// This process as one replica of a multi-process launch.
#[cfg(feature = "distributed")]
#[derive(Debug)]
pub struct C10dReplicas {
    group: ProcessGroup,
    device: Device,
}

/// This build has no data-parallel training: nothing of this type can be made.
#[cfg(not(feature = "distributed"))]
#[derive(Debug)]
pub struct C10dReplicas {
    never: std::convert::Infallible,
}

#[cfg(not(feature = "distributed"))]
impl C10dReplicas {
    /// Fails: this build has no data-parallel training.
    pub fn join(launch: &Launch, _device: Device) -> Result<Self> {
        Err(Error::Distributed {
            rank: launch.rank,
            message: "this build of gptbuild has no data-parallel training (it was built \
                      without the `distributed` feature); rebuild with it, or run one process"
                .into(),
        })
    }
}

#[cfg(not(feature = "distributed"))]
impl Replicas for C10dReplicas {
    fn rank(&self) -> usize {
        match self.never {}
    }

    fn world_size(&self) -> usize {
        match self.never {}
    }

    fn average_gradient(&mut self, _: Tensor, _: Requests) -> Result<Averaged> {
        match self.never {}
    }

    fn sum(&mut self, _: &[f64]) -> Result<Vec<f64>> {
        match self.never {}
    }

    fn broadcast_from_first(&mut self, _: &mut Tensor) -> Result<()> {
        match self.never {}
    }
}

#[cfg(feature = "distributed")]
impl C10dReplicas {
    /// Joins the launch's group, with the transport `device` needs: Gloo for the CPU, NCCL for a
    /// GPU. Returns once every rank has joined.
    pub fn join(launch: &Launch, device: Device) -> Result<Self> {
        let backend = match device {
            Device::Cuda(index) => Backend::Nccl { device: index },
            _ => Backend::Gloo,
        };
        if matches!(backend, Backend::Nccl { .. }) && !crate::distributed::c10d::has_nccl() {
            return Err(Error::Distributed {
                rank: launch.rank,
                message: "training on cuda needs NCCL, and this binary was built without it \
                          (a libtorch without CUDA, or NCCL's headers missing at build time)"
                    .into(),
            });
        }
        let group = ProcessGroup::join(&launch.rendezvous(), backend)?;
        Ok(C10dReplicas { group, device })
    }
}

#[cfg(feature = "distributed")]
impl Replicas for C10dReplicas {
    fn rank(&self) -> usize {
        self.group.rank()
    }

    fn world_size(&self) -> usize {
        self.group.world_size()
    }

    /// The requests' two numbers.
    fn room_after_gradient(&self) -> usize {
        Requests::LEN
    }

    /// One all-reduce of the gradient with the requests in the room after it, divided by the
    /// world size afterwards (Gloo has no mean).
    fn average_gradient(&mut self, mut buffer: Tensor, requests: Requests) -> Result<Averaged> {
        let values = requests.to_values();
        let room = values.len() as i64;
        let length = buffer.size().first().copied().unwrap_or(0) - room;
        if buffer.dim() != 1 || length < 0 {
            return Err(Error::Distributed {
                rank: self.rank(),
                message: format!(
                    "a flat gradient with room for {room} values is one-dimensional and at least \
                     that long, not of shape {:?}",
                    buffer.size()
                ),
            });
        }
        let flags = Tensor::from_slice(&values)
            .to_kind(buffer.kind())
            .to_device(buffer.device());
        buffer.narrow(0, length, room).copy_(&flags);
        self.group.all_reduce_sum(&mut buffer)?;
        let sums = Vec::<f32>::try_from(
            buffer
                .narrow(0, length, room)
                .to_kind(Kind::Float)
                .to_device(Device::Cpu),
        )?;
        let mut gradient = buffer.narrow(0, 0, length);
        let _ = gradient.g_div_scalar_(self.world_size() as f64);
        Ok(Averaged {
            gradient,
            requests: Requests::from_sums(&sums),
        })
    }

    fn sum(&mut self, values: &[f64]) -> Result<Vec<f64>> {
        let mut sums = Tensor::from_slice(values).to_device(self.device);
        self.group.all_reduce_sum(&mut sums)?;
        Ok(Vec::<f64>::try_from(sums.to_device(Device::Cpu))?)
    }

    fn broadcast_from_first(&mut self, tensor: &mut Tensor) -> Result<()> {
        self.group.broadcast(tensor, 0)
    }
}
