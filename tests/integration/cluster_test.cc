// The distributed system end to end: a router, two verify workers and two
// draft workers as separate processes on 127.0.0.1, serving the default
// model, checked through the public gRPC API against in-process target-only
// generation. Slow (starts real processes); label "integration".
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/engine/model/generate.h"
#include "common/rpc/channel.h"
#include "deploy/local_cluster/local_cluster.h"
#include "dspark/internal/v1/spec.grpc.pb.h"
#include "dspark/internal/v1/verify.grpc.pb.h"
#include "dspark/v1/generation.grpc.pb.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "tests/common/rpc/raw_call.h"
#include "tests/verify_worker/spec_engine/spec_engine_test_util.h"

namespace dspark {
namespace {

using deploy::LocalCluster;
using spec::testing::SharedModel;

std::string BinDir() {
  return std::filesystem::read_symlink("/proc/self/exe").parent_path().string();
}

// One cluster for the whole binary (start-up loads the model four times).
class ClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (SharedModel::Get() == nullptr) return;
    deploy::LocalClusterOptions options;
    options.bin_dir = BinDir();
    options.verify_workers = 2;
    options.draft_workers = 2;
    // Fixed verify lengths: every step verifies drafted tokens whatever the
    // timings, so the equality checks below always cover accepted drafts
    // (the confidence scheduler may rightly verify none on a busy machine).
    options.verify_flags = {"--scheduler=fixed", "--verify_len=3"};
    auto cluster = LocalCluster::Start(options);
    if (!cluster.ok()) {
      start_error_ = new std::string(cluster.status().ToString());
      return;
    }
    cluster_ = cluster->release();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    if (SharedModel::Get() == nullptr) GTEST_SKIP() << SharedModel::SkipReason();
    ASSERT_NE(cluster_, nullptr) << (start_error_ ? *start_error_ : "no cluster");
    stub_ = v1::Generation::NewStub(rpc::MakeChannel(cluster_->router().grpc));
  }

  // Prompt i: a slice of the shared corpus, 8..71 tokens long.
  static std::vector<int32_t> Prompt(int i) {
    const auto& corpus = SharedModel::Get()->corpus;
    const size_t start = (static_cast<size_t>(i) * 37) % (corpus.size() - 80);
    const size_t len = 8 + (static_cast<size_t>(i) * 13) % 64;
    return {corpus.begin() + start, corpus.begin() + start + len};
  }

  // Target-only greedy output, in process, stopping at EOS like the router
  // (unless the request ignores it).
  static std::vector<int32_t> Reference(const std::vector<int32_t>& prompt, int max_tokens,
                                        bool ignore_eos = false) {
    SharedModel* m = SharedModel::Get();
    auto cache = m->model->NewKvCache({});
    engine::GenerateOptions options;
    options.max_tokens = max_tokens;
    if (!ignore_eos) options.stop_ids = m->tokenizer->eos_ids();
    auto result = engine::Generate(*m->model, *cache, prompt, options);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? result->tokens : std::vector<int32_t>{};
  }

  static v1::GenerateRequest Request(const std::vector<int32_t>& prompt, int max_tokens) {
    v1::GenerateRequest request;
    for (int32_t t : prompt) request.mutable_token_ids()->add_ids(t);
    request.mutable_stop()->set_max_tokens(max_tokens);
    return request;
  }

  // Sum of kv_blocks_used over the verify workers and open draft sessions.
  static std::pair<int64_t, int64_t> WorkerUsage() {
    int64_t kv = 0, draft_sessions = 0;
    for (const auto* p : cluster_->processes(LocalCluster::Role::kVerify)) {
      auto stub = internal::v1::VerifyWorker::NewStub(rpc::MakeChannel(p->grpc));
      grpc::ClientContext context;
      internal::v1::GetStatusResponse status;
      EXPECT_TRUE(stub->GetStatus(&context, {}, &status).ok());
      kv += status.load().kv_blocks_used();
    }
    for (const auto* p : cluster_->processes(LocalCluster::Role::kDraft)) {
      auto stub = internal::v1::DraftWorker::NewStub(rpc::MakeChannel(p->grpc));
      grpc::ClientContext context;
      internal::v1::GetStatusResponse status;
      if (stub->GetStatus(&context, {}, &status).ok()) {
        draft_sessions += status.load().running_sessions();
      }
    }
    return {kv, draft_sessions};
  }

  // Open sessions on draft worker `index` (GetStatus); -1 when it does not answer.
  static int DraftSessions(int index) {
    auto stub = internal::v1::DraftWorker::NewStub(
        rpc::MakeChannel(cluster_->processes(LocalCluster::Role::kDraft)[index]->grpc));
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    internal::v1::GetStatusResponse status;
    if (!stub->GetStatus(&context, {}, &status).ok()) return -1;
    return status.load().running_sessions();
  }

  // Sum over the verify workers of the counter `name` on their /metrics.
  static double VerifyCounter(const std::string& name) {
    double sum = 0;
    for (const auto* p : cluster_->processes(LocalCluster::Role::kVerify)) {
      if (p->metrics.empty()) continue;
      httplib::Client client(p->metrics.substr(0, p->metrics.rfind(':')),
                             std::stoi(p->metrics.substr(p->metrics.rfind(':') + 1)));
      auto res = client.Get("/metrics");
      if (!res || res->status != 200) continue;
      std::istringstream lines(res->body);
      for (std::string line; std::getline(lines, line);) {
        if (line.rfind(name + "{", 0) == 0 || line.rfind(name + " ", 0) == 0) {
          sum += std::stod(line.substr(line.rfind(' ') + 1));
        }
      }
    }
    return sum;
  }

  static LocalCluster* cluster_;
  static std::string* start_error_;
  std::unique_ptr<v1::Generation::Stub> stub_;
};

LocalCluster* ClusterTest::cluster_ = nullptr;
std::string* ClusterTest::start_error_ = nullptr;

// Runs `n` requests on `threads` threads; out[i] = tokens of request i.
void RunConcurrently(int n, int threads, const std::function<void(int)>& one) {
  std::atomic<int> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (int i = next++; i < n; i = next++) one(i);
    });
  }
  for (auto& t : pool) t.join();
}

// Calls `method` with `bytes` as the request whatever its type (unary and
// server-streaming alike); the status, and in `messages` how many responses.
grpc::Status RawCall(const std::string& target, const std::string& method, const std::string& bytes,
                     int* messages) {
  grpc::GenericStub stub(rpc::MakeChannel(target));
  return rpc::testing::RawCall(stub, method, bytes, absl::Seconds(30), messages);
}

TEST_F(ClusterTest, GreedyOutputEqualsTargetOnlyAtConcurrency16) {
  constexpr int kPrompts = 50, kMaxTokens = 32;
  std::vector<std::vector<int32_t>> got(kPrompts);
  std::vector<grpc::Status> status(kPrompts);
  std::vector<int64_t> accepted(kPrompts);
  RunConcurrently(kPrompts, 16, [&](int i) {
    grpc::ClientContext context;
    v1::GenerateResponse response;
    status[i] = stub_->Generate(&context, Request(Prompt(i), kMaxTokens), &response);
    got[i].assign(response.token_ids().begin(), response.token_ids().end());
    accepted[i] = response.speculation().accepted_tokens();
  });
  int64_t total_accepted = 0;
  for (int i = 0; i < kPrompts; ++i) {
    ASSERT_TRUE(status[i].ok()) << i << ": " << status[i].error_message();
    EXPECT_EQ(got[i], Reference(Prompt(i), kMaxTokens)) << "prompt " << i;
    total_accepted += accepted[i];
  }
  // The drafts went over the network and some were accepted (the outputs
  // above prove they changed nothing).
  EXPECT_GT(total_accepted, 0);
}

TEST_F(ClusterTest, StreamDeltasConcatenateToTheFullText) {
  for (int i = 0; i < 4; ++i) {
    v1::GenerateRequest request = Request(Prompt(100 + i), 40);
    grpc::ClientContext unary_context;
    v1::GenerateResponse whole;
    ASSERT_TRUE(stub_->Generate(&unary_context, request, &whole).ok());

    grpc::ClientContext context;
    auto reader = stub_->GenerateStream(&context, request);
    v1::GenerateStreamResponse chunk;
    std::string text;
    std::vector<int32_t> ids;
    int finishes = 0;
    while (reader->Read(&chunk)) {
      text += chunk.text_delta();
      ids.insert(ids.end(), chunk.token_ids().begin(), chunk.token_ids().end());
      if (chunk.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
        ++finishes;
        EXPECT_EQ(chunk.usage().completion_tokens(), whole.usage().completion_tokens());
      }
    }
    ASSERT_TRUE(reader->Finish().ok());
    EXPECT_EQ(finishes, 1);
    EXPECT_EQ(text, whole.text());
    EXPECT_EQ(ids, std::vector<int32_t>(whole.token_ids().begin(), whole.token_ids().end()));
  }
}

TEST_F(ClusterTest, CancelMidStreamFreesKvOnBothWorkerKinds) {
  // A prompt no other test uses, so its KV blocks are its own (not shared
  // with a cached prefix) and it opens exactly one draft session.
  std::vector<int32_t> prompt;
  for (int i = 0; i < 60; ++i) prompt.push_back(1000 + 37 * i);
  const auto idle = WorkerUsage();
  {
    grpc::ClientContext context;
    v1::GenerateRequest request = Request(prompt, 2000);
    request.mutable_stop()->set_ignore_eos(true);
    auto reader = stub_->GenerateStream(&context, request);
    v1::GenerateStreamResponse chunk;
    ASSERT_TRUE(reader->Read(&chunk));
    const auto busy = WorkerUsage();
    EXPECT_GT(busy.first, idle.first) << "the running session holds KV blocks";
    EXPECT_EQ(busy.second, idle.second + 1) << "and one draft session";
    context.TryCancel();
    while (reader->Read(&chunk)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  // The cancel travels router -> verify worker -> draft worker. Finished
  // sequences may stay in the prefix cache (not counted as used) and a
  // cached one may be evicted meanwhile, so draft sessions may drop below
  // the idle count, never stay above it.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  auto now = WorkerUsage();
  while ((now.first != idle.first || now.second > idle.second) && absl::Now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling remote state
    now = WorkerUsage();
  }
  EXPECT_EQ(now.first, idle.first) << "KV blocks still held on a verify worker";
  EXPECT_LE(now.second, idle.second) << "draft session still open";
}

TEST_F(ClusterTest, BadInputIsInvalidArgumentWhileACanaryCompletes) {
  std::vector<std::pair<std::string, v1::GenerateRequest>> bad;
  {
    v1::GenerateRequest r;  // no prompt at all
    r.mutable_stop()->set_max_tokens(8);
    bad.push_back({"no prompt", r});
  }
  {
    v1::GenerateRequest r;
    r.set_prompt("");
    bad.push_back({"empty prompt", r});
  }
  {
    v1::GenerateRequest r = Request(Prompt(1), 8);
    r.mutable_stop()->set_max_tokens(-1);
    bad.push_back({"negative max_tokens", r});
  }
  {
    v1::GenerateRequest r = Request(Prompt(1), 8);
    r.mutable_sampling()->set_temperature(-0.5f);
    bad.push_back({"temperature < 0", r});
  }
  {
    v1::GenerateRequest r = Request(Prompt(1), 8);
    r.mutable_sampling()->set_top_p(1.5f);
    bad.push_back({"top_p > 1", r});
  }
  {
    v1::GenerateRequest r = Request({1, 2, 999999}, 8);
    bad.push_back({"token id out of vocabulary", r});
  }
  {
    v1::GenerateRequest r = Request(Prompt(1), 8);
    for (int i = 0; i < 100; ++i) r.mutable_stop()->add_stop("x");
    bad.push_back({"too many stop strings", r});
  }
  {
    v1::GenerateRequest r;
    r.set_prompt(std::string(200000, 'a'));
    bad.push_back({"prompt longer than the context", r});
  }
  std::thread canary_thread;
  grpc::Status canary_status;
  v1::GenerateResponse canary;
  canary_thread = std::thread([&] {
    auto stub = v1::Generation::NewStub(rpc::MakeChannel(cluster_->router().grpc));
    grpc::ClientContext context;
    canary_status = stub->Generate(&context, Request(Prompt(3), 48), &canary);
  });
  for (const auto& [what, request] : bad) {
    grpc::ClientContext context;
    v1::GenerateResponse response;
    grpc::Status st = stub_->Generate(&context, request, &response);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << what << ": " << st.error_message();
    EXPECT_FALSE(st.error_message().empty()) << what;
  }
  {
    v1::GenerateRequest r = Request(Prompt(1), 8);
    r.set_model("no-such-model");
    grpc::ClientContext context;
    v1::GenerateResponse response;
    EXPECT_EQ(stub_->Generate(&context, r, &response).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  // Bytes that are not a GenerateRequest at all (the router's handlers never
  // see them: StartServer's interceptor answers).
  for (const char* method :
       {"/dspark.v1.Generation/Generate", "/dspark.v1.Generation/GenerateStream"}) {
    for (const auto& [what, bytes] : std::vector<std::pair<std::string, std::string>>{
             {"malformed protobuf", std::string("\xff\xff\xff\xff", 4)},
             // The prompt field promises 5 bytes and 2 follow.
             {"truncated protobuf", std::string("\x0a\x05", 2) + "ab"},
         }) {
      int messages = -1;
      grpc::Status st = RawCall(cluster_->router().grpc, method, bytes, &messages);
      EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
          << method << " " << what << ": " << st.error_message();
      EXPECT_NE(st.error_message().find("dspark.v1.GenerateRequest"), std::string::npos)
          << method << " " << what << ": " << st.error_message();
      EXPECT_EQ(messages, 0) << method << " " << what;
    }
  }
  // The OpenAI endpoint, in OpenAI's error shape.
  {
    const std::string http = cluster_->router().http;
    httplib::Client client(http.substr(0, http.rfind(':')), std::stoi(http.substr(http.rfind(':') + 1)));
    const std::vector<std::pair<std::string, std::string>> bodies = {
        {"malformed JSON", "{\"model\": "},
        {"invalid UTF-8", std::string("{\"prompt\": \"caf\xc3\", \"max_tokens\": 4}")},
        {"max_tokens 0", "{\"prompt\": \"hi\", \"max_tokens\": 0}"},
        {"top_p 0", "{\"prompt\": \"hi\", \"top_p\": 0}"},
        {"empty messages", "{\"messages\": []}"},
    };
    for (const auto& [what, body] : bodies) {
      const char* path = what == "empty messages" ? "/v1/chat/completions" : "/v1/completions";
      auto res = client.Post(path, body, "application/json");
      ASSERT_TRUE(res) << what;
      EXPECT_EQ(res->status, 400) << what << ": " << res->body;
      EXPECT_NE(res->body.find("\"error\""), std::string::npos) << what;
      EXPECT_NE(res->body.find("\"message\""), std::string::npos) << what;
    }
  }
  canary_thread.join();
  ASSERT_TRUE(canary_status.ok()) << canary_status.error_message();
  EXPECT_EQ(std::vector<int32_t>(canary.token_ids().begin(), canary.token_ids().end()),
            Reference(Prompt(3), 48));
}

// Destructive tests last (gtest runs them in order of definition).
// A draft worker SIGKILLed mid-run costs no request; once the router notices
// (three missed probes) the sessions it drafted for are rebuilt on the
// surviving draft worker from the verify workers' kept context, and the
// streams stay token-identical to target-only decoding before, during and
// after the move. Requests sent afterwards succeed too.
TEST_F(ClusterTest, ZKilledDraftWorkerCostsNoRequestAndItsSessionsReattach) {
  // Long streams (EOS ignored) so that they outlive the router's detection.
  constexpr int kStreams = 4, kStreamTokens = 2000, kAfterMove = 32;
  struct Stream {
    grpc::ClientContext context;
    std::vector<int32_t> tokens;  // guarded by mu
    bool done = false;            // guarded by mu
    grpc::Status status;
  };
  absl::Mutex mu;
  std::vector<std::unique_ptr<Stream>> streams;
  std::vector<std::thread> readers;
  const int before[2] = {DraftSessions(0), DraftSessions(1)};
  ASSERT_GE(before[0], 0);
  ASSERT_GE(before[1], 0);
  for (int i = 0; i < kStreams; ++i) {
    streams.push_back(std::make_unique<Stream>());
    readers.emplace_back([&, s = streams.back().get(), i] {
      v1::GenerateRequest request = Request(Prompt(400 + i), kStreamTokens);
      request.mutable_stop()->set_ignore_eos(true);
      auto reader = stub_->GenerateStream(&s->context, request);
      v1::GenerateStreamResponse chunk;
      while (reader->Read(&chunk)) {
        absl::MutexLock lock(&mu);
        s->tokens.insert(s->tokens.end(), chunk.token_ids().begin(), chunk.token_ids().end());
      }
      grpc::Status status = reader->Finish();
      absl::MutexLock lock(&mu);
      s->status = status;
      s->done = true;
    });
  }
  // Waits until every stream not yet ended has reached(i, stream).
  auto all = [&](const std::function<bool(int, const Stream&)>& reached, absl::Duration timeout) {
    absl::MutexLock lock(&mu);
    auto cond = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      for (int i = 0; i < kStreams; ++i) {
        if (!streams[i]->done && !reached(i, *streams[i])) return false;
      }
      return true;
    };
    return mu.AwaitWithTimeout(absl::Condition(&cond), timeout);
  };
  auto cancel_all = [&] {
    for (auto& s : streams) s->context.TryCancel();
    for (auto& t : readers) t.join();
  };
  if (!all([](int, const Stream& s) { return !s.tokens.empty(); }, absl::Seconds(120))) {
    cancel_all();
    FAIL() << "the streams did not start";
  }
  // Kill the draft worker that took more of the streams: those sessions
  // must end up on the other one.
  const int during[2] = {DraftSessions(0), DraftSessions(1)};
  const int killed = during[1] - before[1] > during[0] - before[0] ? 1 : 0;
  const int survivor = 1 - killed;
  const int moving = during[killed] - before[killed];
  const double reattached_before = VerifyCounter("dspark_draft_reattached_sessions_total");
  ASSERT_TRUE(cluster_->Signal(LocalCluster::Role::kDraft, killed, SIGKILL).ok());
  // The survivor holds its own sessions plus at least the moved streams
  // (kept prefixes move too). Nothing else opens sessions meanwhile.
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  int now = DraftSessions(survivor);
  while (now < during[survivor] + moving && absl::Now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // polling remote state
    now = DraftSessions(survivor);
  }
  bool finished_early = false;
  {
    absl::MutexLock lock(&mu);
    for (const auto& s : streams) finished_early |= s->done;
  }
  EXPECT_FALSE(finished_early) << "a stream ended before the move (too short for this machine?)";
  EXPECT_GT(moving, 0) << "no stream drafted on draft worker " << killed;
  EXPECT_GE(now, during[survivor] + moving)
      << "draft sessions not rebuilt on the surviving worker " << survivor;
  EXPECT_GE(VerifyCounter("dspark_draft_reattached_sessions_total") - reattached_before, moving);
  // Some decoding on the moved sessions, then stop the streams.
  std::vector<size_t> at_move;
  {
    absl::MutexLock lock(&mu);
    for (const auto& s : streams) at_move.push_back(s->tokens.size());
  }
  EXPECT_TRUE(
      all([&](int i, const Stream& s) { return s.tokens.size() >= at_move[i] + kAfterMove; },
          absl::Seconds(120)));
  cancel_all();
  for (int i = 0; i < kStreams; ++i) {
    const Stream& s = *streams[i];
    EXPECT_TRUE(s.status.ok() || s.status.error_code() == grpc::StatusCode::CANCELLED)
        << i << ": " << s.status.error_message();
    ASSERT_FALSE(s.tokens.empty()) << i;
    EXPECT_EQ(s.tokens, Reference(Prompt(400 + i), static_cast<int>(s.tokens.size()), true))
        << "stream " << i;
  }

  // Requests after the kill go to the surviving draft worker and succeed.
  constexpr int kPrompts = 12, kMaxTokens = 48;
  std::vector<std::vector<int32_t>> got(kPrompts);
  std::vector<grpc::Status> status(kPrompts);
  RunConcurrently(kPrompts, 6, [&](int i) {
    grpc::ClientContext context;
    v1::GenerateResponse response;
    status[i] = stub_->Generate(&context, Request(Prompt(200 + i), kMaxTokens), &response);
    got[i].assign(response.token_ids().begin(), response.token_ids().end());
  });
  for (int i = 0; i < kPrompts; ++i) {
    ASSERT_TRUE(status[i].ok()) << i << ": " << status[i].error_message();
    EXPECT_EQ(got[i], Reference(Prompt(200 + i), kMaxTokens)) << "prompt " << i;
  }
}

TEST_F(ClusterTest, ZSigtermDrainsWithoutFailingInFlightRequests) {
  constexpr int kPrompts = 4, kMaxTokens = 64;
  std::vector<grpc::Status> status(kPrompts);
  std::vector<std::vector<int32_t>> got(kPrompts);
  absl::Mutex mu;
  int first_chunks = 0;
  std::vector<std::thread> clients;
  for (int i = 0; i < kPrompts; ++i) {
    clients.emplace_back([&, i] {
      grpc::ClientContext context;
      v1::GenerateRequest request = Request(Prompt(300 + i), kMaxTokens);
      auto reader = stub_->GenerateStream(&context, request);
      v1::GenerateStreamResponse chunk;
      bool first = true;
      while (reader->Read(&chunk)) {
        got[i].insert(got[i].end(), chunk.token_ids().begin(), chunk.token_ids().end());
        if (first) {
          absl::MutexLock lock(&mu);
          ++first_chunks;
        }
        first = false;
      }
      status[i] = reader->Finish();
    });
  }
  {
    absl::MutexLock lock(&mu);
    mu.AwaitWithTimeout(absl::Condition(
                            +[](int* n) { return *n >= kPrompts; }, &first_chunks),
                        absl::Seconds(120));
  }
  // Drain everything: the router and then the workers get SIGTERM.
  cluster_->Stop(absl::Seconds(60));
  for (auto& t : clients) t.join();
  for (int i = 0; i < kPrompts; ++i) {
    ASSERT_TRUE(status[i].ok()) << i << ": " << status[i].error_message();
    EXPECT_EQ(got[i], Reference(Prompt(300 + i), kMaxTokens));
  }
}

}  // namespace
}  // namespace dspark
