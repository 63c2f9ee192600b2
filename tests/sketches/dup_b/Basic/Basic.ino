// Two libraries each ship an example named Basic: their outputs must not collide.
void setup() { pinMode(11, OUTPUT); }
void loop() {}
