#include <NoSuchLibrary.h>

void setup() {}
void loop() {}
