#include <Arduino.h>
#include "ui.h"
namespace fl { void uiBegin() { pinMode(LED_BUILTIN, OUTPUT); } }
