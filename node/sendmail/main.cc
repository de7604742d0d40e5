// sendmail(8)-compatible local submission; see node/sendmail/sendmail.h.
#include <sysexits.h>

#include <string>
#include <vector>

#include "node/common/strings.h"
#include "node/sendmail/sendmail.h"
#include "node/sendmail/sendmail_internal.h"

int main(int argc, char** argv) {
  auto opts =
      zm::sendmail::ParseArgs(std::vector<std::string>(argv, argv + argc));
  if (!opts.ok()) {
    zm::sendmail::Say(2, "sendmail", zm::Message(opts.status()));
    return EX_USAGE;
  }
  return zm::sendmail::Run(*opts, 0, 1, 2);
}
