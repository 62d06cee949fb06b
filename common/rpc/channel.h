// Client channels to other dspark processes (insecure: the cluster network
// is trusted; TLS belongs here when it is not). Thread-safe.
#pragma once

#include <memory>
#include <string>

namespace grpc {
class Channel;
}

namespace dspark::rpc {

// A channel to `target` (host:port or dns:///name:port) with dspark's
// message size limit and keepalive so dead peers are noticed within seconds.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target);

}  // namespace dspark::rpc
