#include "tests/verify_worker/service/verify_service_test_util.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <utility>

#include "common/rpc/channel.h"

namespace dspark::verify::testing {

internal::v1::SessionRequest Request(const std::vector<int32_t>& prompt, int max_tokens) {
  internal::v1::SessionRequest r;
  r.mutable_prompt()->Assign(prompt.begin(), prompt.end());
  r.set_max_tokens(max_tokens);
  r.mutable_sampling()->set_top_p(1.0f);
  r.set_speculation_enabled(true);
  return r;
}

void GatedDrafter::Hold() {
  absl::MutexLock lock(&mu_);
  open_ = false;
}

void GatedDrafter::Release() {
  absl::MutexLock lock(&mu_);
  open_ = true;
}

bool GatedDrafter::WaitHeld(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithDeadline(absl::Condition(&held_), deadline);
}

int GatedDrafter::drafts() {
  absl::MutexLock lock(&mu_);
  return drafts_;
}

absl::Status GatedDrafter::Draft(absl::Span<const drafter::DraftRequest> requests,
                                 std::vector<drafter::DraftBlock>* blocks) {
  {
    absl::MutexLock lock(&mu_);
    ++drafts_;
    held_ = !open_;
    mu_.Await(absl::Condition(&open_));
    held_ = false;
  }
  return inner_->Draft(requests, blocks);
}

ServiceHarness::ServiceHarness(const EngineParts& parts, VerifyServiceOptions options)
    : service_(std::make_unique<VerifyService>(parts, std::move(options))) {
  auto server = rpc::StartServer({.address = "127.0.0.1:0"}, {service_.get()});
  EXPECT_TRUE(server.ok()) << server.status();
  if (!server.ok()) return;
  server_ = std::move(*server);
  stub_ = internal::v1::VerifyWorker::NewStub(
      rpc::MakeChannel("127.0.0.1:" + std::to_string(server_->port())));
}

ServiceHarness::~ServiceHarness() {
  if (server_ != nullptr) server_->Drain(absl::Seconds(5));
  service_->Stop();
}

SessionResult ServiceHarness::Run(const internal::v1::SessionRequest& request,
                                  absl::Duration timeout) {
  SessionResult r;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  auto reader = stub_->Generate(&context, request);
  internal::v1::SessionEvent e;
  while (reader->Read(&e)) {
    ++r.events;
    r.tokens.insert(r.tokens.end(), e.token_ids().begin(), e.token_ids().end());
    r.text += e.text();
    if (e.finish() != internal::v1::SESSION_FINISH_NONE) r.last = e;
  }
  r.status = reader->Finish();
  return r;
}

internal::v1::WorkerLoad ServiceHarness::Load() {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  internal::v1::GetStatusResponse response;
  const grpc::Status st = stub_->GetStatus(&context, {}, &response);
  EXPECT_TRUE(st.ok()) << st.error_message();
  return response.load();
}

}  // namespace dspark::verify::testing
