#include "integer_conv.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/native/quantized/PackedParams.h>
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#ifdef DNN_GATING_HAVE_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

#include "kernels/int8_conv.h"

namespace dnn_gating::bench {
namespace {

constexpr int64_t kBatch = 128;

struct Shape {
  const char* name;
  int64_t channels, side;
};
const std::vector<Shape> kShapes{{"16ch_32px", 16, 32}, {"32ch_16px", 32, 16}, {"64ch_8px", 64, 8}};

struct Engine {
  const char* name;
  at::QEngine engine;
};
std::vector<Engine> engines() {
  std::vector<Engine> out;
  for (const at::QEngine e : at::globalContext().supportedQEngines()) {
    if (e == at::QEngine::ONEDNN) out.push_back({"onednn", e});
    if (e == at::QEngine::FBGEMM) out.push_back({"fbgemm", e});
  }
  return out;
}

void float_conv(benchmark::State& state, Shape shape) {
  torch::manual_seed(0);
  const torch::Tensor x = torch::rand({kBatch, shape.channels, shape.side, shape.side});
  const torch::Tensor w = torch::randn({shape.channels, shape.channels, 3, 3}) * 0.1;
  torch::NoGradGuard no_grad;
  for (auto _ : state) benchmark::DoNotOptimize(torch::conv2d(x, w, {}, 1, 1).data_ptr());
}

// The float convolution as the library evaluates a float model: channels-last.
void float_conv_channels_last(benchmark::State& state, Shape shape) {
  torch::manual_seed(0);
  const torch::Tensor x = torch::rand({kBatch, shape.channels, shape.side, shape.side})
                              .contiguous(at::MemoryFormat::ChannelsLast);
  const torch::Tensor w = torch::randn({shape.channels, shape.channels, 3, 3}) * 0.1;
  torch::NoGradGuard no_grad;
  for (auto _ : state) benchmark::DoNotOptimize(torch::conv2d(x, w, {}, 1, 1).data_ptr());
}

// The library's own integer convolution (kernels::int8_conv), as the
// quantized and PG layers run it: 3-bit activation codes, weight codes up to
// +-max_code (127: 7-bit weights, one int8 pass; 255: 8-bit weights, split
// into two, the input doubled), float output channels-last.
void library_int8_conv(benchmark::State& state, Shape shape, int16_t max_code) {
  namespace ic = kernels::int8_conv;
  if (!ic::available()) {
    state.SkipWithError("built without oneDNN");
    return;
  }
  ic::Geometry g;
  g.out_channels = g.in_channels = shape.channels;
  g.kernel_h = g.kernel_w = 3;
  g.pad_h = g.pad_w = 1;
  torch::manual_seed(0);
  const torch::Tensor w = torch::randint(-max_code, max_code + 1,
                                         {shape.channels, shape.channels, 3, 3}, torch::kShort);
  w.view({-1})[0] = max_code;
  const ic::Convolution conv(g, w.data_ptr<int16_t>());
  const int64_t channels = conv.doubles_input() ? 2 * shape.channels : shape.channels;
  const torch::Tensor src =
      torch::randint(0, 8, {kBatch, shape.side, shape.side, channels}, torch::kByte);
  std::vector<float> dst(kBatch * shape.side * shape.side * shape.channels);
  for (auto _ : state) {
    conv.run(src.data_ptr<uint8_t>(), kBatch, shape.side, shape.side, 0.01f, dst.data());
    benchmark::DoNotOptimize(dst.data());
  }
}

// A 3-bit activation's codes (0..7) in uint8 and 8-bit weights, as PG's
// MSB/LSB parts or a w8/a3 layer would hold them; the output requantized to
// uint8 (`with_conversions`: also the float input quantized and the output
// dequantized, what a layer inside a float model pays).
void int8_conv(benchmark::State& state, Shape shape, Engine engine, bool with_conversions) {
  at::globalContext().setQEngine(engine.engine);
  torch::manual_seed(0);
  const torch::Tensor x =
      torch::randint(0, 8, {kBatch, shape.channels, shape.side, shape.side}) / 7.0;
  const torch::Tensor w = torch::randn({shape.channels, shape.channels, 3, 3}) * 0.1;
  const torch::Tensor qw =
      torch::quantize_per_tensor(w, w.abs().max().item<double>() / 127, 0, torch::kQInt8);
  const auto op = c10::Dispatcher::singleton().findSchemaOrThrow("quantized::conv2d_prepack", "");
  std::vector<c10::IValue> stack{qw,
                                 c10::optional<at::Tensor>(),
                                 std::vector<int64_t>{1, 1},
                                 std::vector<int64_t>{1, 1},
                                 std::vector<int64_t>{1, 1},
                                 int64_t{1}};
  op.callBoxed(&stack);
  const auto packed = stack.at(0).toCustomClass<ConvPackedParamsBase<2>>();
  const torch::Tensor qx = torch::quantize_per_tensor(x, 1.0 / 7, 0, torch::kQUInt8);
  const double out_scale = 0.05;
  torch::NoGradGuard no_grad;
  for (auto _ : state) {
    if (with_conversions) {
      const torch::Tensor in = torch::quantize_per_tensor(x, 1.0 / 7, 0, torch::kQUInt8);
      benchmark::DoNotOptimize(packed->apply(in, out_scale, 0).dequantize().data_ptr());
    } else {
      benchmark::DoNotOptimize(packed->apply(qx, out_scale, 0).data_ptr());
    }
  }
}

#ifdef DNN_GATING_HAVE_DNNL
// oneDNN's own convolution, as an integer path would call it: u8 codes x s8
// weights accumulated in int32 and written as float with one scale (no
// requantization), against its float convolution; formats of its choice.
void onednn_conv(benchmark::State& state, Shape shape, bool int8) {
  using dnnl::memory;
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  const memory::dims src{kBatch, shape.channels, shape.side, shape.side};
  const memory::dims wei{shape.channels, shape.channels, 3, 3};
  const auto in = int8 ? memory::data_type::u8 : memory::data_type::f32;
  const auto w = int8 ? memory::data_type::s8 : memory::data_type::f32;
  const dnnl::convolution_forward::desc desc(
      dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
      memory::desc(src, in, memory::format_tag::any), memory::desc(wei, w, memory::format_tag::any),
      memory::desc(src, memory::data_type::f32, memory::format_tag::any), {1, 1}, {1, 1}, {1, 1});
  dnnl::primitive_attr attr;
  if (int8) attr.set_output_scales(0, {0.01f});
  const dnnl::convolution_forward::primitive_desc pd(desc, attr, engine);
  memory x(pd.src_desc(), engine), weights(pd.weights_desc(), engine), y(pd.dst_desc(), engine);
  // Ordinary values (uninitialised floats may be denormals, which are slow).
  const auto fill = [int8](memory& m, float value, int8_t code) {
    const size_t bytes = m.get_desc().get_size();
    if (int8) {
      std::memset(m.get_data_handle(), code, bytes);
    } else {
      std::fill_n(static_cast<float*>(m.get_data_handle()), bytes / sizeof(float), value);
    }
  };
  fill(x, 0.5f, 3);
  fill(weights, 0.01f, 5);
  dnnl::convolution_forward conv(pd);
  state.SetLabel(pd.impl_info_str());
  for (auto _ : state) {
    conv.execute(stream, {{DNNL_ARG_SRC, x}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, y}});
    stream.wait();
  }
}
#endif

std::string cpu_features() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::string out;
    std::istringstream words(line.substr(line.find(':') + 1));
    std::string word;
    while (words >> word) {
      if (word == "avx2" || word == "avx512f" || word == "avx512bw" || word == "avx512_vnni" ||
          word == "avx_vnni" || word == "amx_int8") {
        out += (out.empty() ? "" : " ") + word;
      }
    }
    return out.empty() ? "none of avx2/avx512/vnni/amx" : out;
  }
  return "unknown";
}

}  // namespace

void register_integer_conv() {
  for (const Shape& shape : kShapes) {
    benchmark::RegisterBenchmark(("float_conv/" + std::string(shape.name)).c_str(), float_conv,
                                 shape)
        ->Unit(benchmark::kMillisecond)
        ->MinTime(0.5)
        ->Repetitions(3)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("float_conv_cl/" + std::string(shape.name)).c_str(),
                                 float_conv_channels_last, shape)
        ->Unit(benchmark::kMillisecond)
        ->MinTime(0.5)
        ->Repetitions(3)
        ->UseRealTime();
    for (const int16_t max_code : {int16_t{127}, int16_t{255}}) {
      const std::string name =
          std::string(max_code > 127 ? "library_int8/w8/" : "library_int8/w7/") + shape.name;
      benchmark::RegisterBenchmark(name.c_str(), library_int8_conv, shape, max_code)
          ->Unit(benchmark::kMillisecond)
          ->MinTime(0.5)
          ->Repetitions(3)
          ->UseRealTime();
    }
    for (const Engine& engine : engines()) {
      for (const bool conversions : {false, true}) {
        const std::string name = std::string(conversions ? "int8_conv_converted/" : "int8_conv/") +
                                 engine.name + "/" + shape.name;
        benchmark::RegisterBenchmark(name.c_str(), int8_conv, shape, engine, conversions)
            ->Unit(benchmark::kMillisecond)
            ->MinTime(0.5)
            ->Repetitions(3)
            ->UseRealTime();
      }
    }
#ifdef DNN_GATING_HAVE_DNNL
    for (const bool int8 : {false, true}) {
      const std::string name = std::string("onednn_conv/") + (int8 ? "int8/" : "f32/") + shape.name;
      benchmark::RegisterBenchmark(name.c_str(), onednn_conv, shape, int8)
          ->Unit(benchmark::kMillisecond)
          ->MinTime(0.5)
          ->Repetitions(3)
          ->UseRealTime();
    }
#endif
  }
}

void print_integer_conv(const std::map<std::string, double>& times) {
  if (times.count("library_int8/w8/" + std::string(kShapes[0].name)) != 0) {
    std::printf(
        "\nthe library's integer convolution (3-bit codes, float output channels-last) / the "
        "float convolution channels-last\n");
    std::printf("%-12s %12s %12s %8s %14s %8s\n", "shape", "float cl ms", "w7 ms", "x float",
                "w8 split ms", "x float");
    for (const Shape& shape : kShapes) {
      const double f = times.at("float_conv_cl/" + std::string(shape.name));
      const double w7 = times.at("library_int8/w7/" + std::string(shape.name));
      const double w8 = times.at("library_int8/w8/" + std::string(shape.name));
      std::printf("%-12s %12.2f %12.2f %8.2f %14.2f %8.2f\n", shape.name, f, w7, w7 / f, w8,
                  w8 / f);
    }
  }
  if (times.count("float_conv/" + std::string(kShapes[0].name)) == 0) return;
  std::printf(
      "\nint8 convolution (LibTorch's quantized engines) / float convolution, 3x3, batch %lld; "
      "CPU: %s\n",
      static_cast<long long>(kBatch), cpu_features().c_str());
  std::printf("%-12s %10s %-8s %12s %8s %22s %8s\n", "shape", "float ms", "engine", "int8 ms",
              "x float", "int8 + conversions ms", "x float");
  for (const Shape& shape : kShapes) {
    const double f = times.at("float_conv/" + std::string(shape.name));
    for (const Engine& engine : engines()) {
      const auto conv = times.find("int8_conv/" + std::string(engine.name) + "/" + shape.name);
      const auto converted =
          times.find("int8_conv_converted/" + std::string(engine.name) + "/" + shape.name);
      if (conv == times.end() || converted == times.end()) continue;
      std::printf("%-12s %10.2f %-8s %12.2f %8.2f %22.2f %8.2f\n", shape.name, f, engine.name,
                  conv->second, conv->second / f, converted->second, converted->second / f);
    }
  }
  const auto f32 = times.find("onednn_conv/f32/" + std::string(kShapes[0].name));
  if (f32 == times.end()) return;
  std::printf(
      "\noneDNN called directly: u8 x s8 -> int32 -> float (one scale) / its float convolution\n");
  for (const Shape& shape : kShapes) {
    const double f = times.at("onednn_conv/f32/" + std::string(shape.name));
    const double q = times.at("onednn_conv/int8/" + std::string(shape.name));
    std::printf("%-12s %10.2f ms %10.2f ms %8.2f\n", shape.name, f, q, q / f);
  }
}

}  // namespace dnn_gating::bench
