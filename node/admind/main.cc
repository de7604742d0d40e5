// admind: the node's admin HTTP listener (health probes, /metrics, the JSON
// API and the dashboard). See docs/admin-api.md.
#include "node/admind/admind.h"

int main(int argc, char** argv) { return zm::admind::Main(argc, argv); }
