#pragma once
#define LED_PIN 13
