#pragma once
// Which tensors the fused kernels (quantizers, PACT, gates) handle, and how
// they are laid out.
#include <ATen/core/Tensor.h>

namespace dnn_gating::kernels {

/// A non-empty float tensor on the CPU. Anything else (a CUDA tensor, double
/// precision) takes the ATen operations.
inline bool fusable(const at::Tensor& t) {
  return t.device().is_cpu() && t.scalar_type() == at::kFloat && t.numel() > 0;
}

/// A 4-d tensor laid out [N, H, W, C] in memory (and not also [N, C, H, W],
/// as when C or H * W is 1).
inline bool channels_last(const at::Tensor& t) {
  return t.dim() == 4 && !t.is_contiguous() && t.is_contiguous(at::MemoryFormat::ChannelsLast);
}

/// The memory format of `t` as the element kernels take it: channels-last,
/// or [N, C, ...] contiguous for anything else.
inline at::MemoryFormat layout_of(const at::Tensor& t) {
  return channels_last(t) ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

/// `t` dense in the layout of `like`: channels-last where `like` is, else
/// [N, C, ...] contiguous, so that element kernels index both alike (no copy
/// where `t` is already so).
inline at::Tensor laid_like(const at::Tensor& t, const at::Tensor& like) {
  return t.contiguous(layout_of(like));
}

/// `t` dense in its own layout: channels-last tensors stay so (a model that
/// trains channels-last keeps that layout through the element kernels).
inline at::Tensor dense(const at::Tensor& t) { return laid_like(t, t); }

}  // namespace dnn_gating::kernels
