// A stand-in for a node daemon (scheduler, router, smtpserver) in the
// supervisor tests. Linked under the program's name, it behaves like one
// on the zm::Daemon skeleton:
//   - etc/fail-<name> exists: fails like a configuration error (exit 1,
//     "file:line: what" on stderr) before writing its pid file;
//   - otherwise writes run/<name>.pid and waits;
//   - SIGHUP appends a line to run/<name>.reloads; SIGTERM exits 0.
#include <fcntl.h>
#include <poll.h>

#include <filesystem>

#include "absl/status/status.h"
#include "node/common/fs.h"
#include "node/common/strings.h"
#include "node/daemon/daemon.h"

int main(int argc, char** argv) {
  std::string name = std::filesystem::path(argv[0]).filename().string();
  auto d = zm::Daemon::Init(name, argc, argv);
  if (!d.ok()) return zm::Daemon::Fail(name, d.status());
  const zm::NodeDir& node = (*d)->node();
  if (zm::fs::Exists(node.etc_file("fail-" + name))) {
    return zm::Daemon::Fail(
        name, absl::InvalidArgumentError(zm::StrCat(
                  node.etc_file(name + ".conf"), ":3: unknown key 'bogus'")));
  }
  if (auto s = (*d)->Ready(); !s.ok()) return zm::Daemon::Fail(name, s);
  (*d)->log().Info("", "stand-in ready");
  for (;;) {
    struct pollfd p = {(*d)->signal_fd(), POLLIN, 0};
    ::poll(&p, 1, -1);
    switch ((*d)->TakeSignal()) {
      case zm::Daemon::Signal::kStop:
        (*d)->log().Info("", "stand-in stopping");
        return 0;
      case zm::Daemon::Signal::kReload: {
        std::string path = node.run() + "/" + name + ".reloads";
        zm::fs::UniqueFd fd(::open(
            path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
        (void)zm::fs::WriteAll(fd.get(), "reload\n", path);
        break;
      }
      case zm::Daemon::Signal::kNone:
        break;
    }
  }
}
