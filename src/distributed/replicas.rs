//! [`Replicas`] over a c10d process group: what the training step exchanges with the other
//! processes, as tensors on this process's device (Gloo moves CPU tensors, NCCL CUDA ones).

use tch::{Device, Kind, Tensor};

use crate::distributed::c10d::{Backend, ProcessGroup};
use crate::distributed::launch::Launch;
use crate::error::{Error, Result};
use crate::train::replicas::{Averaged, Replicas, Requests};

/// This process as one replica of a multi-process launch.
#[derive(Debug)]
pub struct C10dReplicas {
    group: ProcessGroup,
    device: Device,
}

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

impl Replicas for C10dReplicas {
    fn rank(&self) -> usize {
        self.group.rank()
    }

    fn world_size(&self) -> usize {
        self.group.world_size()
    }

    /// One all-reduce of the gradient with the requests appended (two more numbers), divided by
    /// the world size afterwards (Gloo has no mean).
    fn average_gradient(&mut self, flat_gradient: Tensor, requests: Requests) -> Result<Averaged> {
        let values = requests.to_values();
        let flags = Tensor::from_slice(&values).to_device(flat_gradient.device());
        let flags = flags.to_kind(flat_gradient.kind());
        let mut buffer = Tensor::cat(&[flat_gradient, flags], 0);
        self.group.all_reduce_sum(&mut buffer)?;
        let n = buffer.size()[0];
        let flags = n - values.len() as i64;
        let sums = Vec::<f32>::try_from(
            buffer
                .narrow(0, flags, values.len() as i64)
                .to_kind(Kind::Float)
                .to_device(Device::Cpu),
        )?;
        let mut gradient = buffer.narrow(0, 0, flags);
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
