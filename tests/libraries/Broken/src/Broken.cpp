#include "Broken.h"
void brokenInit() { this_is_not_declared(); }
