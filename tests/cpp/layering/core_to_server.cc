// Compiled with the runtime's include roots only (CMakeLists.txt, test layering_core_to_server):
// the server sits above the runtime, so this include must not resolve.
#include "server/model_server.h"
