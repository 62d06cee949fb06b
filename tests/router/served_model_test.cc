// ServedModel on the real default model (skipped when it is not pulled):
// the router's tokenization equals the CLI's (the GGUF's own tokenizer,
// `dspark generate --prompt / --chat`), and the context length comes from
// the metadata — without loading the weights.
#include "router/core/served_model.h"

#include <gtest/gtest.h>

#include "common/engine/model_file/model_file.h"
#include "common/engine/model_store/model_store.h"
#include "common/tokenizer/chat_template.h"

namespace dspark::router {
namespace {

constexpr char kModel[] = "smollm2-135m-instruct";

TEST(ServedModelTest, TokenizesLikeTheCli) {
  auto path = dspark::ResolveModelPath(kModel);
  if (!path.ok()) GTEST_SKIP() << path.status();
  auto model = ServedModel::Load(kModel);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->id(), kModel);
  auto file = engine::OpenModelFile(*path);
  ASSERT_TRUE(file.ok());
  EXPECT_EQ((*model)->context_length(), (*file)->GetIntOr("llama.context_length", -1));
  auto tok = tokenizer::Tokenizer::FromGgufMetadata(**file);
  ASSERT_TRUE(tok.ok());

  const std::string text = "The capital of France is<|im_end|> Paris. ";
  EXPECT_EQ(*(*model)->EncodeText(text), *(*tok)->Encode(text, true, true));

  nlohmann::json messages = nlohmann::json::array(
      {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Hi!"}}});
  auto rendered = tokenizer::ApplyChatTemplate((*tok)->chat_template(), messages, true,
                                               (*tok)->bos_token(), (*tok)->eos_token());
  ASSERT_TRUE(rendered.ok()) << rendered.status();
  auto chat = (*model)->EncodeChat({{"system", "Be brief."}, {"user", "Hi!"}});
  ASSERT_TRUE(chat.ok()) << chat.status();
  EXPECT_EQ(*chat, *(*tok)->Encode(*rendered, false, true));
  EXPECT_FALSE((*model)->tokenizer().eos_ids().empty());

  auto unknown = ServedModel::Load("no-such-model");
  EXPECT_FALSE(unknown.ok());
}

}  // namespace
}  // namespace dspark::router
