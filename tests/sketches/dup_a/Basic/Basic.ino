// Two libraries each ship an example named Basic: their outputs must not collide.
void setup() { pinMode(12, OUTPUT); }
void loop() {}
