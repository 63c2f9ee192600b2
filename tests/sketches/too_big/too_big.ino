// Fits the ATmega328P's 32 KiB but not the 32256 bytes the uno's bootloader leaves: the size check,
// not the linker, must reject it. (Two arrays: one AVR object may not exceed 32767 bytes.)
const uint8_t low[16000] PROGMEM = {1, 2, 3};
const uint8_t high[16000] PROGMEM = {4, 5, 6};
volatile uint8_t sink;

void setup() {}
void loop() {
  int i = analogRead(0);
  sink = pgm_read_byte(&low[i]) + pgm_read_byte(&high[i]);
}
