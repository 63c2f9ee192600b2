// Uses blinkTimes() before its definition (needs a generated prototype), a second .ino,
// a header beside the sketch and a source under src/.
#include "config.h"
#include "src/util/counter.h"

void setup() {
  pinMode(LED_PIN, OUTPUT);
  blinkTimes(3);
}

void loop() { helperLoop(); counterTick(); }

void blinkTimes(int n) {
  for (int i = 0; i < n; i++) { digitalWrite(LED_PIN, HIGH); delay(100); digitalWrite(LED_PIN, LOW); delay(100); }
}
