// A Drafter that drafts on a draft worker: one SpecStream (a gRPC callback
// client reactor) carries every session's Open / Extend / Fork / Close
// without waiting, and each Draft blocks until its reply or a timeout. The
// draft worker answers Open / Extend / Fork only when they fail; such a
// failure marks the session, and its next Extend or Draft reports it. A
// stream that ends or a Draft that times out breaks the drafter for good
// (every call then fails; make a new one to reconnect).
//
// Thread-safety: the Drafter calls come from one thread (the Drafter
// contract); health(), SessionStatus() and the gRPC reactions may run on
// any thread.
//
//   DSPARK_ASSIGN_OR_RETURN(auto remote, RemoteDrafter::Connect(
//       {.address = "10.0.0.7:7001", .target_model = TargetIdentity(target)}));
//   remote->Open(7);
//   remote->Extend(7, tokens, features);  // [n, context_layers * dim]
//   remote->Draft({{.session = 7, .last_token = t, .max_tokens = 5}}, &blocks);
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "draft_worker/drafter/drafter.h"
#include "dspark/internal/v1/spec.grpc.pb.h"

namespace dspark::remote_drafter {

struct RemoteDrafterOptions {
  // The draft worker, host:port or dns:///name:port. Required.
  std::string address;
  // Hello.target_model: draft_service::TargetIdentity of the target. The
  // draft worker refuses a stream for another target. Default "".
  std::string target_model;
  // How long a Draft (and Connect's Hello) waits for its reply. Default 2 s.
  absl::Duration timeout = absl::Seconds(2);
};

class RemoteDrafter final : public drafter::Drafter {
 public:
  // Opens the stream and sends Hello without waiting for anything.
  static std::unique_ptr<RemoteDrafter> Start(const RemoteDrafterOptions& options);
  // Start, then waits (up to the timeout) for the Hello reply: Unavailable
  // when the worker cannot be reached, FailedPrecondition when it refuses
  // the target, DeadlineExceeded when it does not answer.
  static absl::StatusOr<std::unique_ptr<RemoteDrafter>> Connect(
      const RemoteDrafterOptions& options);
  // Cancels the stream (the draft worker closes its sessions) and waits for
  // gRPC to let go of it.
  ~RemoteDrafter() override;

  RemoteDrafter(const RemoteDrafter&) = delete;
  RemoteDrafter& operator=(const RemoteDrafter&) = delete;

  // Waits (up to the timeout) for the Hello reply; its error as for Connect.
  absl::Status WaitForHello();

  // From the Hello reply; "", 0 and {} before it.
  std::string name() const override;
  int max_block() const override;
  std::vector<int> context_layers() const override;

  absl::Status Open(drafter::SessionId session) override;
  absl::Status Extend(drafter::SessionId session, absl::Span<const int32_t> tokens,
                      absl::Span<const float> features) override;
  absl::Status Draft(absl::Span<const drafter::DraftRequest> requests,
                     std::vector<drafter::DraftBlock>* blocks) override;
  // Waits for the answer (one round trip): the caller falls back to Open.
  absl::Status Fork(drafter::SessionId child, drafter::SessionId parent,
                    int64_t prefix_len) override;
  void Close(drafter::SessionId session) override;

  // Draft in two halves, so that a caller can have several draft workers
  // drafting at once: SendDraft returns a ticket for AwaitDraft, which
  // waits until the reply or the timeout counted from SendDraft.
  absl::StatusOr<uint64_t> SendDraft(absl::Span<const drafter::DraftRequest> requests);
  absl::Status AwaitDraft(uint64_t ticket, std::vector<drafter::DraftBlock>* blocks);

  // OK while the stream works; else why it broke.
  absl::Status health() const;
  // OK unless the draft worker refused one of the session's operations.
  absl::Status SessionStatus(drafter::SessionId session) const;
  const std::string& address() const { return options_.address; }

 private:
  class Stream;
  struct PendingDraft {
    size_t requests = 0;
    absl::Time deadline;
    bool answered = false;
    dspark::internal::v1::SpecResponse response;
  };

  explicit RemoteDrafter(const RemoteDrafterOptions& options);
  // Queues a message (assigning its seq) unless the stream is broken.
  absl::StatusOr<uint64_t> Send(dspark::internal::v1::SpecRequest request,
                                drafter::SessionId session = -1);
  // Reactions.
  void OnResponse(dspark::internal::v1::SpecResponse response);
  void OnWriteDone(bool ok);
  void OnStreamEnd(absl::Status status);
  void OnDone(absl::Status status);
  // Marks the stream broken (first reason wins), drops unsent messages, and
  // says whether the caller must release gRPC's hold on the call.
  bool FailLocked(absl::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Stops the call: cancels it and waits for OnDone.
  void Shutdown();

  const RemoteDrafterOptions options_;
  std::unique_ptr<dspark::internal::v1::DraftWorker::Stub> stub_;
  std::unique_ptr<Stream> stream_;

  mutable absl::Mutex mu_;
  absl::Status failure_ ABSL_GUARDED_BY(mu_);      // non-OK: broken
  bool done_ ABSL_GUARDED_BY(mu_) = false;         // gRPC called OnDone
  bool ended_first_ ABSL_GUARDED_BY(mu_) = false;  // failure_ is "the stream ended"
  bool hold_released_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  std::deque<dspark::internal::v1::SpecRequest> out_ ABSL_GUARDED_BY(mu_);  // front: in flight
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t hello_seq_ ABSL_GUARDED_BY(mu_) = 0;
  bool hello_done_ ABSL_GUARDED_BY(mu_) = false;
  dspark::internal::v1::HelloReply hello_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, PendingDraft> drafts_ ABSL_GUARDED_BY(mu_);
  // Open / Extend / Fork messages not yet known to have succeeded -> their
  // session. Replies come in seq order, so any reply settles older ones.
  std::map<uint64_t, drafter::SessionId> unsettled_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<drafter::SessionId, absl::Status> failed_sessions_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dspark::remote_drafter
