// Compiled with the runtime's include roots only (CMakeLists.txt, test layering_core_to_core):
// a runtime header is reachable, so the negative probe beside it fails for the right reason.
#include "core/exec/session.h"
