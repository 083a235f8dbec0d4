#pragma once
/// A convolution's geometry as Python's nn.Conv2d holds it (2-tuples), read
/// into the library's options with a ValueError for anything else.

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace dnn_gating::python {

/// `values` as the two numbers of an ExpandingArray<2>; ValueError naming
/// `name` unless there are exactly two, each at least `minimum`.
inline torch::ExpandingArray<2> pair_of(const std::string& name, const std::vector<int64_t>& values,
                                        int64_t minimum) {
  TORCH_CHECK_VALUE(values.size() == 2, name, " must hold two numbers (height, width), got ",
                    values.size());
  TORCH_CHECK_VALUE(values[0] >= minimum && values[1] >= minimum, name, " must be at least ",
                    minimum, ", got (", values[0], ", ", values[1], ")");
  return torch::ExpandingArray<2>(at::IntArrayRef(values));
}

}  // namespace dnn_gating::python
