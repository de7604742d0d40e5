#include "node/ta/vacation/vacation.h"

int main(int argc, char** argv) { return zm::vacation::Main(argc, argv); }
