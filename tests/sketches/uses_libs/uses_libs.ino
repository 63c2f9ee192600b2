// A 1.5-layout library reached through a header in a subfolder, and a legacy flat library
// that itself pulls in Wire.
#include <fl/ui.h>
#include <OldSchool.h>

void setup() { fl::uiBegin(); oldSchoolBegin(); }
void loop() {}
