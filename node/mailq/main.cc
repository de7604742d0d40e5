// mailq: show the node's queue (see mailq.h for the options).
#include <iostream>
#include <string>
#include <vector>

#include "node/admin/admin_grpc_client.h"
#include "node/mailq/mailq.h"

int main(int argc, char** argv) {
  zm::admin::QuietGrpcLog();  // errors come as mailq's own one line
  std::vector<std::string> args(argv + 1, argv + argc);
  return zm::mailq::Main(args, std::cout, std::cerr);
}
