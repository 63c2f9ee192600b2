void helperLoop() {
  blinkTimes(1);
}
