#include "tests/router/router_test_util.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "common/rpc/channel.h"
#include "common/tokenizer/unicode.h"
#include "nlohmann/json.hpp"

namespace dspark::router::testing {

std::unique_ptr<ServedModel> TestModel() {
  using Json = nlohmann::json;
  Json vocab = Json::object();
  for (int b = 0; b < 256; ++b) {
    vocab[tokenizer::ByteLevelEncode(std::string(1, static_cast<char>(b)))] = b;
  }
  Json j;
  j["model"] = {{"type", "BPE"}, {"vocab", vocab}, {"merges", Json::array()}};
  j["added_tokens"] =
      Json::array({{{"id", kImStart}, {"content", "<|im_start|>"}, {"special", true}},
                   {{"id", kImEnd}, {"content", "<|im_end|>"}, {"special", true}}});
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  j["decoder"] = {{"type", "ByteLevel"}};
  Json config = {
      {"eos_token", "<|im_end|>"},
      {"chat_template",
       "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
       "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"}};
  auto tok = tokenizer::Tokenizer::FromHfJson(j.dump(), config.dump());
  EXPECT_TRUE(tok.ok()) << tok.status();
  auto model = ServedModel::FromTokenizer(kModelId, *std::move(tok), kContext);
  EXPECT_TRUE(model.ok()) << model.status();
  return *std::move(model);
}

WorkerServer::WorkerServer(dspark::testing::FakeVerifyWorkerOptions options) : worker(options) {
  auto started = rpc::StartServer({}, {&worker});
  EXPECT_TRUE(started.ok()) << started.status();
  server = *std::move(started);
}

std::string WorkerServer::address() const { return absl::StrCat("127.0.0.1:", server->port()); }

TestCluster::TestCluster(int workers, int max_sessions, RouterBackendOptions options,
                         dspark::testing::FakeVerifyWorkerOptions worker_options) {
  worker_options.model = kModelId;
  backend_ = std::make_unique<RouterBackend>(options, TestModel(), &registry_);
  for (int i = 0; i < workers; ++i) {
    workers_.push_back(std::make_unique<WorkerServer>(worker_options));
    worker_ids_.push_back(registry_.Register(WorkerKind::kVerify, workers_.back()->address(),
                                             kModelId, max_sessions));
  }
  service_ = std::make_unique<GenerationService>(backend_.get());
  registry_service_ = std::make_unique<RegistryService>(&registry_);
  auto started = rpc::StartServer({}, {service_.get(), registry_service_.get()});
  EXPECT_TRUE(started.ok()) << started.status();
  server_ = *std::move(started);
}

TestCluster::~TestCluster() {
  // Calls end before the backend, the backend's sessions before the workers.
  server_.reset();
  backend_.reset();
  workers_.clear();
}

std::string TestCluster::router_address() const {
  return absl::StrCat("127.0.0.1:", server_->port());
}

std::unique_ptr<dspark::v1::Generation::Stub> TestCluster::Client() const {
  return dspark::v1::Generation::NewStub(rpc::MakeChannel(router_address()));
}

GenerationRequest TextRequest(const std::string& prompt, int max_tokens) {
  GenerationRequest r;
  r.input = prompt;
  r.max_tokens = max_tokens;
  return r;
}

GenerationBackend::ChunkFn Collector::OnChunk() {
  return [this](GenerationChunk chunk) {
    absl::MutexLock lock(&mutex_);
    EXPECT_FALSE(done_.has_value()) << "chunk after on_done";
    chunks_.push_back(std::move(chunk));
  };
}

GenerationBackend::DoneFn Collector::OnDone() {
  return [this](absl::Status status) {
    absl::MutexLock lock(&mutex_);
    ++done_calls_;
    EXPECT_EQ(done_calls_, 1) << "on_done ran twice";
    done_ = std::move(status);
  };
}

bool Collector::WaitDone(absl::Duration timeout) {
  absl::MutexLock lock(&mutex_);
  auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { return done_.has_value(); };
  return mutex_.AwaitWithTimeout(absl::Condition(&done), timeout);
}

absl::Status Collector::status() {
  absl::MutexLock lock(&mutex_);
  return done_.value_or(absl::UnknownError("not done"));
}

std::vector<GenerationChunk> Collector::chunks() {
  absl::MutexLock lock(&mutex_);
  return chunks_;
}

std::vector<int32_t> Collector::tokens() {
  absl::MutexLock lock(&mutex_);
  std::vector<int32_t> out;
  for (const auto& c : chunks_) out.insert(out.end(), c.token_ids.begin(), c.token_ids.end());
  return out;
}

std::string Collector::text() {
  absl::MutexLock lock(&mutex_);
  std::string out;
  for (const auto& c : chunks_) out += c.text;
  return out;
}

int Collector::chunk_count() {
  absl::MutexLock lock(&mutex_);
  return static_cast<int>(chunks_.size());
}

}  // namespace dspark::router::testing
