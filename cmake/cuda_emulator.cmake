# -DMINIDL_CUDA=EMULATE: the CUDA sources compiled by the C++ compiler and run on the CPU by the emulator
# (cuda/emulator/emulator.h), so that the CUDA tests exercise the kernels on machines without a GPU. Only the
# toolkit's headers are used (for the runtime's types); nothing links libcudart.
find_package(CUDAToolkit)
if(NOT CUDAToolkit_INCLUDE_DIRS OR NOT EXISTS "${CUDAToolkit_INCLUDE_DIRS}/cuda_runtime.h")
  message(FATAL_ERROR "MINIDL_CUDA=EMULATE needs the CUDA toolkit's headers (cuda_runtime.h): install the toolkit "
                      "or set CUDAToolkit_ROOT")
endif()

# Thrust (cuda/sequence.cu) runs on its sequential host backend there; CUDA 13 keeps it under include/cccl.
find_path(MINIDL_THRUST_INCLUDE_DIR thrust/version.h PATHS ${CUDAToolkit_INCLUDE_DIRS}/cccl ${CUDAToolkit_INCLUDE_DIRS}
          NO_DEFAULT_PATH)
if(NOT MINIDL_THRUST_INCLUDE_DIR)
  message(FATAL_ERROR "MINIDL_CUDA=EMULATE needs the CUDA toolkit's Thrust headers (thrust/version.h under "
                      "${CUDAToolkit_INCLUDE_DIRS} or its cccl/ folder)")
endif()

add_executable(minidl_cuda_translate cuda/emulator/translate.cpp)

# Translates CUDA sources for the emulator: each .cu becomes a .cpp and each .cuh a .cuh under the build
# folder, keeping its path, so that translated files include each other's translations. The list of
# outputs goes into `out_var`.
set(MINIDL_EMULATED_DIR ${PROJECT_BINARY_DIR}/emulated)
function(minidl_translate_for_emulator out_var)
  set(outputs)
  foreach(src IN LISTS ARGN)
    string(REGEX REPLACE "\\.cu$" ".cpp" translated ${src})
    set(out ${MINIDL_EMULATED_DIR}/${translated})
    add_custom_command(OUTPUT ${out}
                       COMMAND minidl_cuda_translate ${PROJECT_SOURCE_DIR}/${src} ${out}
                       DEPENDS minidl_cuda_translate ${PROJECT_SOURCE_DIR}/${src}
                       COMMENT "Translating ${src} for the CUDA emulator" VERBATIM)
    list(APPEND outputs ${out})
  endforeach()
  set(${out_var} ${outputs} PARENT_SCOPE)
endfunction()
minidl_translate_for_emulator(emulated_sources ${MINIDL_CUDA_SOURCES} ${MINIDL_CUDA_HEADERS})

add_library(minidl_cuda_emulated OBJECT ${emulated_sources} cuda/emulator/scheduler.cpp cuda/emulator/runtime.cpp)
# Compiles `target`'s translated sources: the translations first, then the stand-ins for the toolkit's
# device headers (cuda_pipeline.h), then the sources; the toolkit's own headers last.
function(minidl_use_emulator target)
  target_include_directories(${target} BEFORE PRIVATE ${MINIDL_EMULATED_DIR} ${PROJECT_SOURCE_DIR}/cuda/emulator/include
                                                      ${PROJECT_SOURCE_DIR})
  target_include_directories(${target} SYSTEM PRIVATE ${CUDAToolkit_INCLUDE_DIRS} ${MINIDL_THRUST_INCLUDE_DIR})
  # Device code that has a PTX path and an emulated one (cuda/mma.cuh, cp.async) picks by it; so does
  # cuda::emulated() in runtime.cu.
  target_compile_definitions(${target} PRIVATE MINIDL_CUDA_EMULATED)
  if(MINIDL_NATIVE)
    target_compile_options(${target} PRIVATE -march=native)  # fmaf inline rather than a libm call
  endif()
endfunction()
minidl_use_emulator(minidl_cuda_emulated)
set_target_properties(minidl_cuda_emulated PROPERTIES POSITION_INDEPENDENT_CODE ON)
if(MINIDL_SANITIZE)
  # The kernels too: with MINIDL_CUDA_CACHING=0 each tensor is an allocation of its own exact size, so a
  # kernel's access past it is reported, as compute-sanitizer's memcheck would on the GPU.
  target_compile_options(minidl_cuda_emulated PRIVATE -fsanitize=address,undefined -fno-omit-frame-pointer
                                                      -fno-sanitize-recover=undefined)
endif()
