// The c10d shim: the few calls `vicuna train` needs from libtorch's own distributed engine (the one
// under torch.distributed and FSDP), as plain C functions over tch's tensors (`at::Tensor*`).
// TCPStore rendezvous, ProcessGroupGloo for CPU tensors, ProcessGroupNCCL for CUDA tensors (when
// compiled with USE_C10D_NCCL), and the collectives the trainer uses, each returning a work handle
// that is waited for with a timeout. Every function catches C++ exceptions and returns them as a
// malloc'd message (NULL on success), so no exception ever crosses into Rust. Only
// src/train/dist/engine.rs calls these functions.
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <ATen/ATen.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  std::chrono::milliseconds timeout;
};

struct Work {
  c10::intrusive_ptr<c10d::Work> work;
};

char* message(const std::string& s) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  if (out != nullptr) std::memcpy(out, s.c_str(), s.size() + 1);
  return out;
}

// Runs `body`; a thrown exception becomes the returned message. c10 errors carry a backtrace
// after their first line in some builds: only the message part is kept.
template <typename F>
char* guarded(F body) {
  try {
    body();
    return nullptr;
  } catch (const c10::Error& e) {
    return message(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return message(e.what());
  } catch (...) {
    return message("unknown C++ exception");
  }
}

char* started(const c10::intrusive_ptr<c10d::Work>& w, void** out) {
  *out = new Work{w};
  return nullptr;
}

}  // namespace

extern "C" {

void vicuna_dist_free_message(char* m) { std::free(m); }

int vicuna_dist_has_nccl() {
#ifdef USE_C10D_NCCL
  return 1;
#else
  return 0;
#endif
}

// Joins the group: rank 0 serves the TCPStore at master_addr:master_port, the others connect to
// it; `local_addr` is the address this rank's Gloo transport binds to (reachable by its peers).
char* vicuna_dist_init(const char* master_addr, int master_port, int rank, int world, const char* local_addr,
                       int nccl, long long timeout_ms, void** out) {
  return guarded([&] {
    std::chrono::milliseconds timeout(timeout_ms);
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(master_port);
    opts.isServer = rank == 0;
    opts.numWorkers = world;
    opts.waitWorkers = true;
    opts.timeout = timeout;
    auto store = c10::make_intrusive<c10d::TCPStore>(std::string(master_addr), opts);
    c10::intrusive_ptr<c10d::Backend> backend;
    if (nccl != 0) {
#ifdef USE_C10D_NCCL
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = timeout;
      backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world, options);
#else
      throw std::runtime_error("this vicuna was built without NCCL (the CUDA headers were missing at build time)");
#endif
    } else {
      auto options = c10d::ProcessGroupGloo::Options::create(timeout);
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(std::string(local_addr)));
      backend = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, options);
    }
    *out = new Group{store, backend, timeout};
  });
}

void vicuna_dist_free(void* group) { delete static_cast<Group*>(group); }

// op: 0 sum, 1 max.
char* vicuna_dist_all_reduce(void* group, at::Tensor** tensors, int n, int op, void** out) {
  return guarded([&] {
    auto* g = static_cast<Group*>(group);
    std::vector<at::Tensor> ts;
    for (int i = 0; i < n; ++i) ts.push_back(*tensors[i]);
    c10d::AllreduceOptions o;
    o.reduceOp = op == 1 ? c10d::ReduceOp::MAX : c10d::ReduceOp::SUM;
    o.timeout = g->timeout;
    started(g->backend->allreduce(ts, o), out);
  });
}

// Sums `input` (world x output's length) over the ranks and leaves rank r's part in `output`.
char* vicuna_dist_reduce_scatter(void* group, at::Tensor* output, at::Tensor* input, void** out) {
  return guarded([&] {
    auto* g = static_cast<Group*>(group);
    c10d::ReduceScatterOptions o;
    o.timeout = g->timeout;
    at::Tensor dst = *output, src = *input;
    started(g->backend->_reduce_scatter_base(dst, src, o), out);
  });
}

// Concatenates every rank's `input` into `output` (world x input's length), in rank order.
char* vicuna_dist_all_gather(void* group, at::Tensor* output, at::Tensor* input, void** out) {
  return guarded([&] {
    auto* g = static_cast<Group*>(group);
    c10d::AllgatherOptions o;
    o.timeout = g->timeout;
    at::Tensor dst = *output, src = *input;
    started(g->backend->_allgather_base(dst, src, o), out);
  });
}

char* vicuna_dist_broadcast(void* group, at::Tensor* tensor, int root, void** out) {
  return guarded([&] {
    auto* g = static_cast<Group*>(group);
    std::vector<at::Tensor> ts{*tensor};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    o.timeout = g->timeout;
    started(g->backend->broadcast(ts, o), out);
  });
}

char* vicuna_dist_barrier(void* group, void** out) {
  return guarded([&] {
    auto* g = static_cast<Group*>(group);
    c10d::BarrierOptions o;
    o.timeout = g->timeout;
    started(g->backend->barrier(o), out);
  });
}

// Waits for a started collective; an error or a timeout is returned as a message. The handle is
// freed either way.
char* vicuna_dist_wait(void* work, long long timeout_ms) {
  auto* w = static_cast<Work*>(work);
  char* err = guarded([&] {
    if (!w->work->wait(std::chrono::milliseconds(timeout_ms))) {
      throw std::runtime_error("the collective did not complete within " + std::to_string(timeout_ms) + " ms");
    }
  });
  delete w;
  return err;
}

// Drops a tensor's accumulated gradient (`param.grad = None`), freeing its memory.
char* vicuna_dist_clear_grad(at::Tensor* t) {
  return guarded([&] { t->mutable_grad().reset(); });
}

}  // extern "C"
