// The C++ seam to libtorch's distributed engine, c10d: the part of it gptbuild trains with, behind
// a small C interface that src/distributed/c10d.rs declares. tch binds no c10d, so this file is
// compiled by build.rs (the `cc` crate) against the headers of the very libtorch tch links.
//
// What it offers: a process group over a TCPStore rendezvous (Gloo for CPU tensors; NCCL for CUDA
// tensors when libtorch has CUDA), and the two collectives data-parallel training needs:
// all-reduce (sum) and broadcast. Every call is blocking, and every C++ exception becomes a
// return code and a message, so that nothing unwinds into Rust.
//
// c10d's C++ API is internal to PyTorch and changes between releases; the check below pins it to
// the libtorch version this file was written and tested against.

#include "../seam.h"
#include <torch/version.h>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef GPTBUILD_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

static_assert(TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR == 11,
              "src/distributed/c10d.cpp uses c10d's internal C++ API as of libtorch 2.11; check "
              "its calls against this libtorch's headers before changing the pin");

namespace {

// The group and what keeps it alive: the store its ranks met through.
struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  std::chrono::milliseconds timeout;
};


// Gloo's network device: loopback when the rendezvous is on this machine (no dependence on the
// hostname resolving), the interface named by GLOO_SOCKET_IFNAME when set (as in PyTorch), else
// the address this machine's hostname resolves to.
std::shared_ptr<::gloo::transport::Device> gloo_device(const std::string& host) {
  if (const char* interface = std::getenv("GLOO_SOCKET_IFNAME")) {
    return c10d::ProcessGroupGloo::createDeviceForInterface(interface);
  }
  if (host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1") {
    return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  }
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

}  // namespace

extern "C" {

// Whether this build can make NCCL groups (libtorch with CUDA, and NCCL's headers, at build time).
int gptbuild_c10d_has_nccl() {
#ifdef GPTBUILD_NCCL
  return 1;
#else
  return 0;
#endif
}

// Joins the group of `world_size` ranks meeting at the TCPStore on host:port. Rank 0 serves the
// store unless `store_is_served` (torchrun's agent serves it: TORCHELASTIC_USE_AGENT_STORE). Keys
// live under `prefix`. `cuda_device` < 0 makes a Gloo group for CPU tensors, else an NCCL group on
// that GPU. Returns null and a message on failure, including a rank that does not turn up within
// `timeout_ms`.
void* gptbuild_c10d_group_new(const char* host, uint16_t port, int rank, int world_size,
                              int store_is_served, const char* prefix, int64_t timeout_ms,
                              int cuda_device, char* error, size_t error_len) {
  Group* made = nullptr;
  int status = gptbuild::guarded(error, error_len, [&] {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions options;
    options.port = port;
    options.isServer = rank == 0 && store_is_served == 0;
    // Every rank counts itself in and waits for the rest (as PyTorch's env:// rendezvous does).
    options.numWorkers = static_cast<size_t>(world_size);
    options.waitWorkers = true;
    options.timeout = timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(std::string(host), options);
    c10::intrusive_ptr<c10d::Store> store =
        c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), tcp);
    c10::intrusive_ptr<c10d::Backend> backend;
    if (cuda_device < 0) {
      auto gloo = c10d::ProcessGroupGloo::Options::create(timeout);
      gloo->devices.push_back(gloo_device(host));
      gloo->threads = 2;
      backend = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world_size, gloo);
    } else {
#ifdef GPTBUILD_NCCL
      c10::cuda::set_device(static_cast<c10::DeviceIndex>(cuda_device));
      auto nccl = c10d::ProcessGroupNCCL::Options::create();
      nccl->timeout = timeout;
      auto group = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world_size, nccl);
      group->setBoundDeviceId(
          at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(cuda_device)));
      backend = group;
#else
      throw std::runtime_error(
          "this gptbuild was built without NCCL (libtorch without CUDA, or NCCL's headers "
          "missing at build time)");
#endif
    }
    made = new Group{store, backend, timeout};
  });
  return status == 0 ? made : nullptr;
}

// Sums `tensor` over the ranks, in place.
int gptbuild_c10d_all_reduce_sum(void* group, at::Tensor* tensor, char* error, size_t error_len) {
  return gptbuild::guarded(error, error_len, [&] {
    auto* g = static_cast<Group*>(group);
    std::vector<at::Tensor> tensors{*tensor};
    c10d::AllreduceOptions options;
    options.reduceOp = c10d::ReduceOp::SUM;
    options.timeout = g->timeout;
    g->backend->allreduce(tensors, options)->wait(g->timeout);
  });
}

// Replaces `tensor` with rank `root`'s, in place.
int gptbuild_c10d_broadcast(void* group, at::Tensor* tensor, int root, char* error,
                            size_t error_len) {
  return gptbuild::guarded(error, error_len, [&] {
    auto* g = static_cast<Group*>(group);
    std::vector<at::Tensor> tensors{*tensor};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    options.timeout = g->timeout;
    g->backend->broadcast(tensors, options)->wait(g->timeout);
  });
}

// Leaves the group (its connections close; the store stays up while any rank holds it).
void gptbuild_c10d_group_free(void* group) { delete static_cast<Group*>(group); }

}  // extern "C"
