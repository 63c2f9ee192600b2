// Fails to compile on purpose: the test expects the error at line 5 of this file.
void setup() {
}

void loop() { int x = ; }
