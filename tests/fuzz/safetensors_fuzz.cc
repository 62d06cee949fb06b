// libFuzzer target: the safetensors parser on arbitrary bytes, plus the same
// bytes read as a config.json and every accepted tensor name renamed, must
// return a Status, never crash, leak or read outside the input.

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "absl/strings/string_view.h"
#include "common/engine/model_file/internal/hf_config_keys.h"
#include "common/engine/model_file/internal/hf_names.h"
#include "common/engine/model_file/internal/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace internal = dspark::engine::internal;
  auto st = internal::ParseSafetensors("fuzz.safetensors", data, size);
  if (st.ok()) {
    volatile uint8_t sink = 0;
    for (const dspark::engine::TensorView& t : st->tensors) {
      if (t.nbytes < 0 || t.data < data || t.data + t.nbytes > data + size) std::abort();
      if (t.nbytes > 0) sink = sink + t.data[0] + t.data[t.nbytes - 1];
      (void)internal::HfToGgufTensorName("gemma3", t.name);
    }
  }
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  auto meta = internal::HfConfigToMetadata("fuzz/config.json", text);
  (void)internal::HfToGgufTensorName("llama", text);
  return 0;
}
