#include <Arduino.h>
#include "counter.h"
static unsigned long ticks;
void counterTick() { ticks++; if (ticks % 1000 == 0) Serial.println(ticks); }
