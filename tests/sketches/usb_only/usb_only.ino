// USBDevice exists only on boards with native USB (leonardo); on uno this must fail.
void setup() { USBDevice.attach(); }
void loop() {}
