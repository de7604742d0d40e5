// admind's program: config, the listener thread, the per-minute history
// sampler and, in a fleet, publishing this node's status.
//
//   int main(int argc, char** argv) { return zm::admind::Main(argc, argv); }
#ifndef ZM_ADMIND_ADMIND_H_
#define ZM_ADMIND_ADMIND_H_

namespace zm::admind {

int Main(int argc, char** argv);

}  // namespace zm::admind

#endif  // ZM_ADMIND_ADMIND_H_
