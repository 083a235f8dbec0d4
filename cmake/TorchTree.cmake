# LibTorch taken from a tree as it is: a LibTorch archive or the torch/
# directory of an installed PyTorch wheel (include/, lib/). A CUDA wheel's own
# TorchConfig.cmake needs the CUDA toolkit (nvcc and its CMake package) only
# to describe targets this project does not compile against; running on the
# GPU needs just the wheel's libraries, which this links. Defines the
# imported target `torch` (as TorchConfig.cmake does), TORCH_LIBRARIES,
# TORCH_INCLUDE_DIRS and TORCH_CXX_FLAGS.
#
#   DNN_GATING_TORCH_ROOT        the tree
#   DNN_GATING_TORCH_CXX11_ABI   0 or 1: the C++ ABI the tree was built with
#                                (python3 -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')

set(DNN_GATING_TORCH_CXX11_ABI 1 CACHE STRING "C++ ABI of the LibTorch tree (0 or 1)")
set(TORCH_INCLUDE_DIRS
  ${DNN_GATING_TORCH_ROOT}/include
  ${DNN_GATING_TORCH_ROOT}/include/torch/csrc/api/include)
if(NOT EXISTS ${DNN_GATING_TORCH_ROOT}/include/torch/csrc/api/include/torch/torch.h)
  message(FATAL_ERROR "DNN_GATING_TORCH_ROOT=${DNN_GATING_TORCH_ROOT}: no include/torch/csrc/api/include/torch/torch.h there")
endif()
set(_dg_torch_libs "")
foreach(name torch torch_cpu c10)
  find_library(DNN_GATING_TORCH_LIB_${name} ${name} PATHS ${DNN_GATING_TORCH_ROOT}/lib NO_DEFAULT_PATH)
  if(NOT DNN_GATING_TORCH_LIB_${name})
    message(FATAL_ERROR "DNN_GATING_TORCH_ROOT=${DNN_GATING_TORCH_ROOT}: lib${name}.so not found in lib/")
  endif()
  list(APPEND _dg_torch_libs ${DNN_GATING_TORCH_LIB_${name}})
endforeach()
# The CUDA backend registers itself when libtorch_cuda.so is loaded; nothing
# here calls into it directly, so the linker must keep it (as TorchConfig does).
foreach(name torch_cuda c10_cuda)
  find_library(DNN_GATING_TORCH_LIB_${name} ${name} PATHS ${DNN_GATING_TORCH_ROOT}/lib NO_DEFAULT_PATH)
  if(DNN_GATING_TORCH_LIB_${name})
    list(APPEND _dg_torch_libs "-Wl,--no-as-needed,${DNN_GATING_TORCH_LIB_${name}},--as-needed")
    message(STATUS "LibTorch tree: with ${DNN_GATING_TORCH_LIB_${name}}")
  endif()
endforeach()
set(TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=${DNN_GATING_TORCH_CXX11_ABI}")

add_library(torch INTERFACE IMPORTED)
set_target_properties(torch PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "${TORCH_INCLUDE_DIRS}"
  INTERFACE_LINK_LIBRARIES "${_dg_torch_libs}"
  INTERFACE_COMPILE_OPTIONS "${TORCH_CXX_FLAGS}")
set(TORCH_LIBRARIES torch)
set(Torch_FOUND TRUE)
message(STATUS "LibTorch tree: ${DNN_GATING_TORCH_ROOT} (C++11 ABI ${DNN_GATING_TORCH_CXX11_ABI})")
