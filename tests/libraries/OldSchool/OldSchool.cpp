#include <Wire.h>
#include "OldSchool.h"
#include "helper.h"
void oldSchoolBegin() { Wire.begin(); helperInit(); }
