// zmailer: the administrator's command. See zmailer.h.
#include "node/zmailer/zmailer.h"

int main(int argc, char** argv) { return zm::zmailer::Main(argc, argv); }
