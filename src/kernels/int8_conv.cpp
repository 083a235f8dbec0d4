#include "kernels/int8_conv.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <stdexcept>
#include <tuple>
#include <unordered_map>
#include <vector>

#ifdef DNN_GATING_HAVE_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace dnn_gating::kernels::int8_conv {
namespace {

// Splits the codes where one lies outside int8 (see the header): returns the
// int8 weights [out, in or 2 in, kh, kw] and whether they were split.
std::pair<std::vector<int8_t>, bool> int8_weights(const Geometry& g, const int16_t* codes) {
  const int64_t per_out = g.in_channels * g.kernel_h * g.kernel_w;
  const int64_t n = g.out_channels * per_out;
  const bool split = std::any_of(codes, codes + n, [](int16_t q) { return q < -128 || q > 127; });
  if (!split) return {std::vector<int8_t>(codes, codes + n), false};
  std::vector<int8_t> out(static_cast<size_t>(2 * n));
  for (int64_t o = 0; o < g.out_channels; ++o) {
    for (int64_t i = 0; i < per_out; ++i) {
      const int16_t q = codes[o * per_out + i];
      const int16_t h = static_cast<int16_t>(q >= 0 ? q / 2 : -((-q + 1) / 2));  // floor(q / 2)
      out[static_cast<size_t>(o * 2 * per_out + i)] = static_cast<int8_t>(h);
      out[static_cast<size_t>(o * 2 * per_out + per_out + i)] = static_cast<int8_t>(q - 2 * h);
    }
  }
  return {std::move(out), true};
}

int64_t output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad) {
  return (in + 2 * pad - kernel) / stride + 1;
}

}  // namespace

#ifdef DNN_GATING_HAVE_DNNL

bool available() { return true; }

const char* isa() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41:
      return "sse41";
    case dnnl::cpu_isa::avx:
      return "avx";
    case dnnl::cpu_isa::avx2:
      return "avx2";
    case dnnl::cpu_isa::avx2_vnni:
      return "avx2_vnni";
    case dnnl::cpu_isa::avx512_core:
      return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni:
      return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16:
      return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx:
      return "avx512_core_amx";
    default:
      return "other";
  }
}

namespace {

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// This thread's scratch memory for oneDNN, grown as needed, 64-byte aligned.
void* thread_scratch(size_t bytes) {
  struct Freed {
    void operator()(void* p) const { std::free(p); }
  };
  thread_local std::unique_ptr<void, Freed> held;
  thread_local size_t size = 0;
  if (bytes > size) {
    size = (bytes + 63) / 64 * 64;
    held.reset(std::aligned_alloc(64, size));
    if (!held) throw std::bad_alloc();
  }
  return held.get();
}

// A stream per thread, made once (making one looks up symbols each time).
dnnl::stream& cpu_stream() {
  thread_local dnnl::stream stream(cpu_engine());
  return stream;
}

}  // namespace

struct Convolution::Impl {
  using memory = dnnl::memory;
  // The map's kinds: 0 one scale; 1 scale and shift per channel, then 2 a
  // ReLU or 3 a clip; | kAddToDst: the sum post-op before the ReLU or clip.
  static constexpr int kAddToDst = 4;
  // One primitive, with the weights in the layout it chose, per input shape.
  struct Prepared {
    dnnl::convolution_forward primitive;
    memory weights;
    std::string implementation;
    memory::desc scratchpad;
  };

  Geometry geometry;
  std::vector<int8_t> weights;  // [out, in_eff, kh, kw]
  bool split = false;
  int64_t max_weight = 0;  // largest |int8 weight|
  mutable std::mutex mutex;
  // Keyed by batch, height, width, the map (0 one scale, 1 per channel, 2
  // per channel then a ReLU, 3 per channel then a clip) and the clip's bound.
  mutable std::map<std::tuple<int64_t, int64_t, int64_t, int, float>, Prepared> prepared;
  mutable std::string last_implementation;

  int64_t in_effective() const { return geometry.in_channels * (split ? 2 : 1); }
  memory::desc scalar_desc() const {
    return memory::desc({1, 1, 1, 1}, memory::data_type::f32, memory::format_tag::nchw);
  }
  memory::desc channel_desc() const {
    return memory::desc({1, geometry.out_channels, 1, 1}, memory::data_type::f32,
                        memory::format_tag::nchw);
  }

  // Runs the primitive of `map` (see `prepared`) with its post-ops' operands
  // `first` (the scale or per-channel scales) and `second` (the shifts).
  void execute(const uint8_t* src, int64_t batch, int64_t height, int64_t width, int map,
               float upper, const float* first, const float* second, float* dst) const {
    const Prepared& p = prepare(batch, height, width, map, upper);
    const Geometry& g = geometry;
    const memory::dims src_dims{batch, in_effective(), height, width};
    const memory::dims dst_dims{batch, g.out_channels,
                                output_size(height, g.kernel_h, g.stride_h, g.pad_h),
                                output_size(width, g.kernel_w, g.stride_w, g.pad_w)};
    dnnl::engine& engine = cpu_engine();
    memory in({src_dims, memory::data_type::u8, memory::format_tag::nhwc}, engine,
              const_cast<uint8_t*>(src));
    memory out({dst_dims, memory::data_type::f32, memory::format_tag::nhwc}, engine, dst);
    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, in}, {DNNL_ARG_WEIGHTS, p.weights}, {DNNL_ARG_DST, out}};
    args.emplace(
        DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1,
        memory(map == 0 ? scalar_desc() : channel_desc(), engine, const_cast<float*>(first)));
    if (map != 0) {
      args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(1) | DNNL_ARG_SRC_1,
                   memory(channel_desc(), engine, const_cast<float*>(second)));
    }
    const size_t scratch = p.scratchpad.get_size();
    if (scratch > 0) {
      args.emplace(DNNL_ARG_SCRATCHPAD, memory(p.scratchpad, engine, thread_scratch(scratch)));
    }
    dnnl::stream& stream = cpu_stream();
    p.primitive.execute(stream, args);
    stream.wait();
  }

  const Prepared& prepare(int64_t batch, int64_t height, int64_t width, int map,
                          float upper) const {
    std::lock_guard<std::mutex> lock(mutex);
    const auto key = std::make_tuple(batch, height, width, map, (map & 3) == 3 ? upper : 0.0f);
    auto it = prepared.find(key);
    if (it == prepared.end()) {
      const Geometry& g = geometry;
      const memory::dims src{batch, in_effective(), height, width};
      const memory::dims wei{g.out_channels, in_effective(), g.kernel_h, g.kernel_w};
      const memory::dims dst{batch, g.out_channels,
                             output_size(height, g.kernel_h, g.stride_h, g.pad_h),
                             output_size(width, g.kernel_w, g.stride_w, g.pad_w)};
      const dnnl::convolution_forward::desc desc(
          dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
          memory::desc(src, memory::data_type::u8, memory::format_tag::nhwc),
          memory::desc(wei, memory::data_type::s8, memory::format_tag::any),
          memory::desc(dst, memory::data_type::f32, memory::format_tag::nhwc),
          {g.stride_h, g.stride_w}, {g.pad_h, g.pad_w}, {g.pad_h, g.pad_w});
      // The scale changes with every batch (the activations' maximum): a
      // binary post-op takes it at run time, where output scales would
      // need a new primitive.
      dnnl::post_ops ops;
      if (map == 0) {
        ops.append_binary(dnnl::algorithm::binary_mul, scalar_desc());
      } else {
        ops.append_binary(dnnl::algorithm::binary_mul, channel_desc());
        ops.append_binary(dnnl::algorithm::binary_add, channel_desc());
        if ((map & kAddToDst) != 0) ops.append_sum(1.0f);
        if ((map & 3) == 2) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
        if ((map & 3) == 3) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_clip, 0.0f, upper);
      }
      dnnl::primitive_attr attr;
      attr.set_post_ops(ops);
      // Scratch memory from the running thread (below): oneDNN's own would
      // tie the primitive to the thread that made it.
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      const dnnl::convolution_forward::primitive_desc pd(desc, attr, cpu_engine());
      memory plain({wei, memory::data_type::s8, memory::format_tag::oihw}, cpu_engine(),
                   const_cast<int8_t*>(weights.data()));
      memory laid_out(pd.weights_desc(), cpu_engine());
      dnnl::stream& stream = cpu_stream();
      dnnl::reorder(plain, laid_out).execute(stream, plain, laid_out);
      stream.wait();
      it = prepared
               .emplace(key, Prepared{dnnl::convolution_forward(pd), laid_out, pd.impl_info_str(),
                                      pd.scratchpad_desc()})
               .first;
    }
    last_implementation = it->second.implementation;
    return it->second;
  }
};

Convolution::Convolution(const Geometry& geometry, const int16_t* codes)
    : impl_(std::make_unique<Impl>()) {
  impl_->geometry = geometry;
  auto [weights, split] = int8_weights(geometry, codes);
  impl_->weights = std::move(weights);
  impl_->split = split;
  for (const int8_t w : impl_->weights) {
    impl_->max_weight = std::max<int64_t>(impl_->max_weight, w < 0 ? -int64_t{w} : int64_t{w});
  }
}

std::string Convolution::implementation() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->last_implementation;
}

void Convolution::run(const uint8_t* src, int64_t batch, int64_t height, int64_t width, float scale,
                      float* dst) const {
  impl_->execute(src, batch, height, width, 0, 0.0f, &scale, nullptr, dst);
}

void Convolution::run(const uint8_t* src, int64_t batch, int64_t height, int64_t width,
                      const ChannelMap& map, float* dst) const {
  const int kind = (!map.relu                  ? 1
                    : std::isfinite(map.upper) ? 3
                                               : 2) |
                   (map.add_to_dst ? Impl::kAddToDst : 0);
  impl_->execute(src, batch, height, width, kind, map.upper, map.scale, map.shift, dst);
}

#else  // no oneDNN headers: the layers never construct one

bool available() { return false; }

const char* isa() { return "none"; }

struct Convolution::Impl {
  Geometry geometry;
  std::vector<int8_t> weights;
  bool split = false;
  int64_t max_weight = 0;
};

Convolution::Convolution(const Geometry& geometry, const int16_t* codes)
    : impl_(std::make_unique<Impl>()) {
  impl_->geometry = geometry;
  impl_->split = int8_weights(geometry, codes).second;
}

std::string Convolution::implementation() const { return {}; }

void Convolution::run(const uint8_t*, int64_t, int64_t, int64_t, float, float*) const {
  throw std::logic_error("this build has no integer convolution (oneDNN was not found)");
}

void Convolution::run(const uint8_t*, int64_t, int64_t, int64_t, const ChannelMap&, float*) const {
  throw std::logic_error("this build has no integer convolution (oneDNN was not found)");
}

#endif

Convolution::~Convolution() = default;

const Geometry& Convolution::geometry() const { return impl_->geometry; }

bool Convolution::doubles_input() const { return impl_->split; }

int64_t Convolution::max_exact_input_code() const {
  const int64_t max_byte = 32767 / (2 * std::max<int64_t>(impl_->max_weight, 1));
  return std::min<int64_t>(max_byte, 255) / (impl_->split ? 2 : 1);
}

}  // namespace dnn_gating::kernels::int8_conv
