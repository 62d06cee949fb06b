// libFuzzer target: the GGUF parser on arbitrary bytes must return a Status,
// never crash, leak or read outside the input; a file it accepts must have
// every tensor's bytes inside the input.

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "common/engine/model_file/internal/gguf_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto gguf = dspark::engine::internal::ParseGguf("fuzz.gguf", data, size);
  if (!gguf.ok()) return 0;
  volatile uint8_t sink = 0;
  for (const dspark::engine::TensorView& t : gguf->tensors) {
    if (t.nbytes <= 0 || t.data < data || t.data + t.nbytes > data + size) std::abort();
    sink = sink + t.data[0] + t.data[t.nbytes - 1];  // ASan checks both ends
  }
  if (gguf->data_offset % gguf->alignment != 0) std::abort();
  return 0;
}
