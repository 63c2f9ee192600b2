#include <Broken.h>

void setup() { brokenInit(); }
void loop() {}
