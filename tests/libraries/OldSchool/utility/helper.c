#include "helper.h"
static volatile int ready;
void helperInit(void) { ready = 1; }
