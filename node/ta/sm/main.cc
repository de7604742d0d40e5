// sm: runs the mailer programs of etc/sm.conf (node/ta/sm/sm.h).
#include "node/ta/sm/sm.h"

int main(int argc, char** argv) {
  return zm::ta::AgentMain("sm", argc, argv, zm::sm::MakeAgent);
}
