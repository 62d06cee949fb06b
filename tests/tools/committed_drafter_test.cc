// CommittedDrafterDir: the committed drafter of a catalogue name or of a
// .gguf file named after one, including names whose dots are not an
// extension (qwen2.5-coder-0.5b-instruct once resolved to "qwen2.5-coder-0").
#include <gtest/gtest.h>

#include <string>

#include "tools/cli/spec_setup.h"

namespace dspark::cli {
namespace {

const std::string kDrafters = std::string(DSPARK_SOURCE_DIR) + "/models/drafters/";

TEST(CommittedDrafterDirTest, CatalogueNamesAndFiles) {
  EXPECT_EQ(CommittedDrafterDir("smollm2-135m-instruct"), kDrafters + "smollm2-135m-instruct");
  EXPECT_EQ(CommittedDrafterDir("/cache/smollm2-135m-instruct.gguf"),
            kDrafters + "smollm2-135m-instruct");
  EXPECT_EQ(CommittedDrafterDir("qwen2.5-coder-0.5b-instruct"),
            kDrafters + "qwen2.5-coder-0.5b-instruct");
  EXPECT_EQ(CommittedDrafterDir("/cache/qwen2.5-coder-0.5b-instruct.gguf"),
            kDrafters + "qwen2.5-coder-0.5b-instruct");
  EXPECT_EQ(CommittedDrafterDir("no-such-model"), "");
  EXPECT_EQ(CommittedDrafterDir(""), kDrafters + "smollm2-135m-instruct");  // the default
}

}  // namespace
}  // namespace dspark::cli
