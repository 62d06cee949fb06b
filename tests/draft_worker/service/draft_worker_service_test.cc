// The DraftWorker service over real gRPC on loopback, driven by a raw
// SpecStream client: Hello (drafter, block, layers; a wrong target refused),
// every kind of bad input answered with its code and changing nothing else,
// drafts equal to the same drafter's in process, a stream's end closing its
// sessions, Draft requests of several streams drafted in one call, GetStatus.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "common/rpc/channel.h"
#include "draft_worker/ngram/ngram_drafter.h"
#include "draft_worker/service/spec_codec.h"
#include "tests/draft_worker/service/draft_worker_test_util.h"

namespace dspark::draft_service {
namespace {

namespace v1 = dspark::internal::v1;
using testing::GatedDrafter;
using testing::InProcessDraftWorker;

constexpr char kTarget[] = "tiny.gguf:1234";
constexpr int kVocab = 300;
constexpr int kDim = 4;  // target hidden size: a context layer is 4 floats per token

std::unique_ptr<drafter::Drafter> Ngram() {
  auto d = drafter::NgramDrafter::Create({});
  EXPECT_TRUE(d.ok()) << d.status();
  return *std::move(d);
}

DraftWorkerServiceOptions Options() {
  return {.model = "tiny",
          .loop = {.target_model = kTarget, .vocab_size = kVocab, .target_dim = kDim}};
}

// A repetitive context: prompt lookup finds continuations in it.
std::vector<int32_t> Context(int offset) {
  std::vector<int32_t> t;
  for (int i = 0; i < 40; ++i) t.push_back(10 + (i + offset) % 9);
  return t;
}

// One SpecStream with a blocking client; every call is bounded by a deadline.
class RawStream {
 public:
  explicit RawStream(const std::string& address)
      : stub_(v1::DraftWorker::NewStub(rpc::MakeChannel(address))) {
    context_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    stream_ = stub_->SpecStream(&context_);
  }

  uint64_t Send(v1::SpecRequest request) {
    request.set_seq(next_seq_++);
    EXPECT_TRUE(stream_->Write(request));
    return request.seq();
  }
  v1::SpecResponse Read() {
    v1::SpecResponse response;
    EXPECT_TRUE(stream_->Read(&response));
    return response;
  }
  // Sends and reads the answer (for messages that are always answered or fail).
  v1::SpecResponse Call(v1::SpecRequest request) {
    const uint64_t seq = Send(std::move(request));
    v1::SpecResponse r = Read();
    EXPECT_EQ(r.seq(), seq);
    return r;
  }
  void End() {
    stream_->WritesDone();
    EXPECT_TRUE(stream_->Finish().ok());
  }

  static v1::SpecRequest Hello(const std::string& target = kTarget) {
    v1::SpecRequest r;
    r.mutable_hello()->set_target_model(target);
    return r;
  }
  static v1::SpecRequest Open(int64_t session) {
    v1::SpecRequest r;
    r.mutable_open()->set_session(session);
    return r;
  }
  static v1::SpecRequest Extend(int64_t session, const std::vector<int32_t>& tokens,
                                std::string features = "") {
    v1::SpecRequest r;
    r.mutable_extend()->set_session(session);
    r.mutable_extend()->mutable_tokens()->Add(tokens.begin(), tokens.end());
    r.mutable_extend()->set_features(std::move(features));
    return r;
  }
  static v1::SpecRequest Draft(const std::vector<drafter::DraftRequest>& requests) {
    v1::SpecRequest r;
    r.mutable_draft();  // set even when empty (a barrier)
    for (const auto& q : requests) ToProto(q, r.mutable_draft()->add_requests());
    return r;
  }

 private:
  std::unique_ptr<v1::DraftWorker::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::SpecRequest, v1::SpecResponse>> stream_;
  uint64_t next_seq_ = 1;
};

drafter::DraftRequest Req(int64_t session, int32_t last, int max_tokens = 5) {
  return {.session = session, .last_token = last, .max_tokens = max_tokens};
}

void ExpectSameBlocks(const v1::DraftBlocks& wire, const std::vector<drafter::DraftBlock>& local) {
  ASSERT_EQ(wire.blocks_size(), static_cast<int>(local.size()));
  for (size_t i = 0; i < local.size(); ++i) {
    auto block = FromProto(wire.blocks(static_cast<int>(i)));
    ASSERT_TRUE(block.ok()) << block.status();
    EXPECT_EQ(block->tokens, local[i].tokens) << "block " << i;
    EXPECT_EQ(block->q, local[i].q) << "block " << i;
    EXPECT_EQ(block->confidence, local[i].confidence) << "block " << i;
  }
}

TEST(DraftWorkerServiceTest, HelloSaysWhatTheDrafterIsAndRefusesAnotherTarget) {
  InProcessDraftWorker worker(std::make_unique<GatedDrafter>(Ngram(), std::vector<int>{1, 2}),
                              Options());
  ASSERT_TRUE(worker.ok()) << worker.status();
  RawStream s(worker.address());
  v1::SpecResponse r = s.Call(RawStream::Open(1));
  EXPECT_EQ(r.code(), static_cast<int>(absl::StatusCode::kFailedPrecondition)) << "op before Hello";
  r = s.Call(RawStream::Hello("other.gguf:99"));
  EXPECT_EQ(r.code(), static_cast<int>(absl::StatusCode::kFailedPrecondition));
  EXPECT_NE(r.message().find("other.gguf"), std::string::npos) << r.message();
  EXPECT_FALSE(r.has_hello());
  r = s.Call(RawStream::Hello());
  ASSERT_EQ(r.code(), 0) << r.message();
  EXPECT_EQ(r.hello().drafter(), "ngram");
  EXPECT_EQ(r.hello().max_block(), 7);
  EXPECT_EQ(std::vector<int>(r.hello().context_layers().begin(), r.hello().context_layers().end()),
            (std::vector<int>{1, 2}));
  r = s.Call(RawStream::Hello());
  EXPECT_EQ(r.code(), static_cast<int>(absl::StatusCode::kFailedPrecondition)) << "Hello twice";
  EXPECT_EQ(worker.service().stats().open_sessions, 0);
  s.End();
}

TEST(DraftWorkerServiceTest, BadInputIsAnsweredWithItsCodeAndChangesNothing) {
  // Two context layers of 4 floats: an Extend of n tokens carries 32n bytes.
  InProcessDraftWorker worker(std::make_unique<GatedDrafter>(Ngram(), std::vector<int>{1, 2}),
                              Options());
  ASSERT_TRUE(worker.ok()) << worker.status();
  auto local = Ngram();  // the same drafter in process, given only the good ops
  const auto features = [](size_t tokens) {
    return FeaturesToBytes(std::vector<float>(tokens * 2 * kDim, 0.5f));
  };
  const int invalid = static_cast<int>(absl::StatusCode::kInvalidArgument);
  RawStream s(worker.address());
  ASSERT_EQ(s.Call(RawStream::Hello()).code(), 0);
  s.Send(RawStream::Open(7));
  ASSERT_TRUE(local->Open(7).ok());
  const std::vector<int32_t> ctx = Context(0);
  s.Send(RawStream::Extend(7, ctx, features(ctx.size())));
  ASSERT_TRUE(local->Extend(7, ctx, {}).ok());

  EXPECT_EQ(s.Call(RawStream::Open(7)).code(), invalid) << "open twice";
  EXPECT_EQ(s.Call(RawStream::Extend(8, {1, 2}, features(2))).code(), invalid) << "unknown";
  EXPECT_EQ(s.Call(RawStream::Extend(7, {1, 2}, features(3))).code(), invalid) << "bytes";
  EXPECT_EQ(s.Call(RawStream::Extend(7, {1, 2}, "abc")).code(), invalid) << "partial float";
  EXPECT_EQ(s.Call(RawStream::Extend(7, {1, kVocab}, features(2))).code(), invalid) << "token";
  EXPECT_EQ(s.Call(RawStream::Extend(7, {-1}, features(1))).code(), invalid) << "token";
  EXPECT_EQ(s.Call(RawStream::Draft({Req(8, 12)})).code(), invalid) << "unknown session";
  EXPECT_EQ(s.Call(RawStream::Draft({Req(7, 12, 0)})).code(), invalid) << "max_tokens 0";
  EXPECT_EQ(s.Call(RawStream::Draft({Req(7, 12, 8)})).code(), invalid) << "above max_block";
  EXPECT_EQ(s.Call(RawStream::Draft({Req(7, kVocab)})).code(), invalid) << "last_token";
  EXPECT_EQ(s.Call(RawStream::Draft({Req(7, 12), Req(7, 12)})).code(), invalid) << "twice";
  drafter::DraftRequest bad_sampling = Req(7, 12);
  bad_sampling.sampling.temperature = -1;
  EXPECT_EQ(s.Call(RawStream::Draft({bad_sampling})).code(), invalid) << "temperature";
  v1::SpecRequest bad_fork;
  bad_fork.mutable_fork()->set_child(9);
  bad_fork.mutable_fork()->set_parent(8);
  EXPECT_EQ(s.Call(bad_fork).code(), invalid) << "fork of an unknown parent";
  EXPECT_EQ(s.Call(v1::SpecRequest()).code(), invalid) << "no operation";
  v1::SpecRequest close_unknown;
  close_unknown.mutable_close()->set_session(99);
  s.Send(close_unknown);  // not a failure: not answered

  // None of it touched session 7: its draft is the in-process drafter's.
  v1::SpecResponse r = s.Call(RawStream::Draft({Req(7, ctx.back())}));
  ASSERT_EQ(r.code(), 0) << r.message();
  std::vector<drafter::DraftBlock> want;
  ASSERT_TRUE(local->Draft({Req(7, ctx.back())}, &want).ok());
  ASSERT_FALSE(want[0].tokens.empty()) << "the context should give prompt-lookup drafts";
  ExpectSameBlocks(r.blocks(), want);
  EXPECT_EQ(worker.service().stats().open_sessions, 1);
  s.End();
}

TEST(DraftWorkerServiceTest, EndedStreamClosesItsSessions) {
  InProcessDraftWorker worker(Ngram(), Options());
  ASSERT_TRUE(worker.ok()) << worker.status();
  RawStream a(worker.address());
  RawStream b(worker.address());
  for (RawStream* s : {&a, &b}) {
    ASSERT_EQ(s->Call(RawStream::Hello()).code(), 0);
    // The same session ids on both streams are different sessions.
    s->Send(RawStream::Open(1));
    s->Send(RawStream::Open(2));
    ASSERT_EQ(s->Call(RawStream::Draft({})).code(), 0);  // a barrier
  }
  EXPECT_EQ(worker.service().stats().open_sessions, 4);
  a.End();
  EXPECT_TRUE(worker.service().AwaitStats(
      [](const DraftingStats& s) { return s.open_sessions == 2 && s.streams == 1; },
      absl::Seconds(10)));
  b.End();
  EXPECT_TRUE(worker.service().AwaitStats(
      [](const DraftingStats& s) { return s.open_sessions == 0 && s.streams == 0; },
      absl::Seconds(10)));
}

TEST(DraftWorkerServiceTest, DraftsOfSeveralStreamsGoInOneCall) {
  auto gated = std::make_unique<GatedDrafter>(Ngram());
  GatedDrafter* gate = gated.get();
  InProcessDraftWorker worker(std::move(gated), Options());
  ASSERT_TRUE(worker.ok()) << worker.status();
  auto local = Ngram();
  RawStream a(worker.address()), b(worker.address()), c(worker.address());
  int offset = 0;
  for (RawStream* s : {&a, &b, &c}) {
    ASSERT_EQ(s->Call(RawStream::Hello()).code(), 0);
    s->Send(RawStream::Open(1));
    s->Send(RawStream::Extend(1, Context(offset)));
    ASSERT_TRUE(local->Open(offset).ok());
    ASSERT_TRUE(local->Extend(offset, Context(offset), {}).ok());
    ASSERT_EQ(s->Call(RawStream::Draft({})).code(), 0);  // applied before what follows
    ++offset;
  }
  // Stream a's draft holds the drafting thread; meanwhile b and c (two
  // requests) queue theirs, which must then be drafted together.
  gate->CloseGate();
  const uint64_t seq_a = a.Send(RawStream::Draft({Req(1, 12)}));
  ASSERT_TRUE(gate->AwaitHeld(absl::Seconds(10)));
  b.Send(RawStream::Open(2));
  b.Send(RawStream::Extend(2, Context(5)));
  const uint64_t seq_b = b.Send(RawStream::Draft({Req(1, 13), Req(2, 14)}));
  const uint64_t seq_c = c.Send(RawStream::Draft({Req(1, 15)}));
  EXPECT_TRUE(worker.service().AwaitStats([](const DraftingStats& s) { return s.queued == 4; },
                                          absl::Seconds(10)));
  gate->OpenGate();
  v1::SpecResponse ra = a.Read(), rb = b.Read(), rc = c.Read();
  EXPECT_EQ(ra.seq(), seq_a);
  EXPECT_EQ(rb.seq(), seq_b);
  EXPECT_EQ(rc.seq(), seq_c);
  EXPECT_EQ(gate->batches(), (std::vector<int>{1, 3}));
  EXPECT_EQ(worker.service().stats().max_batch_streams, 2);
  EXPECT_EQ(worker.service().stats().max_batch, 3);

  // Batched or not, every block is what the drafter gives in process.
  std::vector<drafter::DraftBlock> want;
  ASSERT_TRUE(local->Draft({Req(0, 12)}, &want).ok());
  ExpectSameBlocks(ra.blocks(), want);
  ASSERT_TRUE(local->Open(5).ok());
  ASSERT_TRUE(local->Extend(5, Context(5), {}).ok());
  ASSERT_TRUE(local->Draft({Req(1, 13), Req(5, 14), Req(2, 15)}, &want).ok());
  ExpectSameBlocks(rb.blocks(), {want[0], want[1]});
  ExpectSameBlocks(rc.blocks(), {want[2]});
  for (RawStream* s : {&a, &b, &c}) s->End();
}

TEST(DraftWorkerServiceTest, GetStatusReportsLoadAndDrafter) {
  InProcessDraftWorker worker(Ngram(), Options());
  ASSERT_TRUE(worker.ok()) << worker.status();
  RawStream s(worker.address());
  ASSERT_EQ(s.Call(RawStream::Hello()).code(), 0);
  s.Send(RawStream::Open(3));
  ASSERT_EQ(s.Call(RawStream::Draft({})).code(), 0);
  worker.service().SetDraining(true);
  auto stub = v1::DraftWorker::NewStub(rpc::MakeChannel(worker.address()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::GetStatusResponse status;
  ASSERT_TRUE(stub->GetStatus(&context, {}, &status).ok());
  EXPECT_EQ(status.model(), "tiny");
  EXPECT_EQ(status.drafter(), "ngram");
  EXPECT_EQ(status.load().running_sessions(), 1);
  EXPECT_TRUE(status.load().draining());
  s.End();
}

TEST(DraftWorkerServiceTest, KeepsItsPrometheusMetrics) {
  prometheus::Registry registry;
  metrics::DraftMetrics metrics(registry, {.worker = "draft-0", .pool = "draft", .model = "tiny"});
  DraftWorkerServiceOptions options = Options();
  options.loop.metrics = &metrics;
  InProcessDraftWorker worker(std::make_unique<GatedDrafter>(Ngram(), std::vector<int>{1}),
                              options);
  ASSERT_TRUE(worker.ok()) << worker.status();
  RawStream s(worker.address());
  ASSERT_EQ(s.Call(RawStream::Hello()).code(), 0);
  s.Send(RawStream::Open(1));
  const std::vector<int32_t> ctx = Context(0);
  s.Send(RawStream::Extend(1, ctx, FeaturesToBytes(std::vector<float>(ctx.size() * kDim))));
  v1::SpecResponse r = s.Call(RawStream::Draft({Req(1, ctx.back())}));
  ASSERT_EQ(r.code(), 0) << r.message();
  EXPECT_EQ(metrics.sessions->Value(), 1);
  EXPECT_EQ(metrics.streams->Value(), 1);
  EXPECT_EQ(metrics.feature_bytes->Value(), static_cast<double>(ctx.size() * kDim * 4));
  EXPECT_EQ(metrics.drafted_tokens->Value(), r.blocks().blocks(0).tokens_size());
  EXPECT_GT(metrics.drafted_tokens->Value(), 0);
  s.End();
  EXPECT_TRUE(worker.service().AwaitStats([](const DraftingStats& st) { return st.streams == 0; },
                                          absl::Seconds(10)));
  EXPECT_EQ(metrics.sessions->Value(), 0);
}

}  // namespace
}  // namespace dspark::draft_service
