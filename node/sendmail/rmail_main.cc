// rmail: UUCP mail submission; see node/sendmail/sendmail.h.
#include <sysexits.h>

#include <string>
#include <vector>

#include "node/common/strings.h"
#include "node/sendmail/sendmail.h"
#include "node/sendmail/sendmail_internal.h"

int main(int argc, char** argv) {
  auto opts =
      zm::sendmail::ParseRmailArgs(std::vector<std::string>(argv, argv + argc));
  if (!opts.ok()) {
    zm::sendmail::Say(2, "rmail", zm::Message(opts.status()));
    return EX_USAGE;
  }
  return zm::sendmail::RunRmail(*opts, 0, 2);
}
